import type { Readable } from 'node:stream'
import { constants as zlib, BrotliCompress } from 'node:zlib'

/** A stream an onSend hook put between an event stream and the response, that can be flushed. */
export interface Flushable {
  flush (kind?: number): void
}

export function isFlushable (body: Readable): body is Readable & Flushable {
  return typeof (body as Partial<Flushable>).flush === 'function'
}

/**
 * Keeps events live through an encoder (a `node:zlib` compressor an onSend hook piped the
 * stream into): a compressor holds output until it has enough to compress well, so it is
 * flushed once per event-loop turn in which the stream gave it data, after all of it.
 */
export class EncoderFlush {
  readonly #encoder: Flushable
  #scheduled = false

  constructor (encoder: Flushable) {
    this.#encoder = encoder
  }

  /** Call after data reached the encoder; the flush runs on the next turn, once. */
  readonly schedule = (): void => {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(this.#flush)
  }

  readonly #flush = (): void => {
    this.#scheduled = false
    // Z_SYNC_FLUSH ends the deflate block on a byte boundary without resetting the dictionary
    // (Z_FULL_FLUSH, zlib's default, would); Brotli has one flush operation.
    if (this.#encoder instanceof BrotliCompress) this.#encoder.flush()
    else this.#encoder.flush(zlib.Z_SYNC_FLUSH)
  }
}
