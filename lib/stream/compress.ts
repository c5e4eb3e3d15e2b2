import { pipeline } from 'node:stream'
import type { Readable, Transform } from 'node:stream'
import { constants as zlib, createBrotliCompress, createDeflate, createGzip } from 'node:zlib'

/** A content coding fastify-conduit can compress an event stream with (RFC 9110, section 8.4.1). */
export type Encoding = 'br' | 'gzip' | 'deflate'

/** The `compress` option, resolved: see `CompressOptionsSchema` in lib/types.ts. */
export interface CompressSettings {
  /** The codings offered, most preferred first. */
  readonly encodings: readonly Encoding[]
  /** zlib level of gzip and deflate, 1 to 9. */
  readonly level: number
  /** Brotli quality, 0 to 11. */
  readonly quality: number
}

/**
 * The defaults. gzip first: every client has it, and on small per-event flushes Brotli at a
 * streaming quality saves little more than gzip for a lot more memory per stream (see
 * bench/compress.mjs). Brotli quality 5, not zlib's 11: 11 is meant for static files, and a
 * stream is compressed as it is written.
 */
export const COMPRESS_DEFAULTS: CompressSettings = { encodings: ['gzip', 'br', 'deflate'], level: 6, quality: 5 }

// Brotli's window: 2^18 = 256 KiB instead of its default 4 MiB. Events reference recent events
// (the same keys, the same shapes), so a small window loses next to nothing in size, and a
// stream's encoder holds it for the stream's whole life.
const BROTLI_WINDOW_BITS = 18

/**
 * The coding to answer `acceptEncoding` (a request's `Accept-Encoding`) with, among `encodings`
 * (server preference, most preferred first), following RFC 9110, section 12.5.3: the coding
 * the client weights highest wins; a tie goes to the server's order; `*` weights every coding
 * it does not name; `q=0` refuses one; `x-gzip` is `gzip`. Undefined when the client accepts
 * none of them (or sent no header): the stream then goes out uncompressed.
 */
export function negotiateEncoding (acceptEncoding: string | undefined, encodings: readonly Encoding[]): Encoding | undefined {
  if (acceptEncoding === undefined || acceptEncoding === '') return undefined
  const weights = new Map<string, number>()
  for (const item of acceptEncoding.split(',')) {
    const [name, ...parameters] = item.split(';')
    let weight = 1
    for (const parameter of parameters) {
      const [key, value] = parameter.split('=')
      if (key.trim().toLowerCase() === 'q') weight = Number(value)
    }
    // A malformed weight accepts nothing rather than guessing.
    if (!(weight >= 0 && weight <= 1)) weight = 0
    const coding = name.trim().toLowerCase()
    weights.set(coding === 'x-gzip' ? 'gzip' : coding, weight)
  }
  const wildcard = weights.get('*') ?? 0
  let chosen: Encoding | undefined
  let best = 0
  for (const encoding of encodings) {
    const weight = weights.get(encoding) ?? wildcard
    if (weight > best) {
      chosen = encoding
      best = weight
    }
  }
  return chosen
}

/** `Vary` with `accept-encoding` added (a cache must key the response on it); `*` stays. */
export function varyOnAcceptEncoding (vary: string | undefined): string {
  if (vary === undefined || vary.trim() === '') return 'accept-encoding'
  const names = vary.split(',').map((name) => name.trim().toLowerCase())
  return names.includes('accept-encoding') || names.includes('*') ? vary : `${vary}, accept-encoding`
}

/**
 * The body that compresses `stream` with `encoding`: a `node:zlib` encoder `stream` is piped
 * into. The stream flushes it after every batch and heartbeat (Z_SYNC_FLUSH, or Brotli's
 * flush): it finds it when Fastify pipes it to the response, as for an onSend hook's encoder
 * (see ServerEventStream and EncoderFlush). Backpressure goes through: the encoder takes no
 * more while the socket is backed up, and then the stream is not pulled. Either end going
 * away destroys the other.
 */
export function compressStream (stream: Readable, encoding: Encoding, settings: CompressSettings): Transform {
  const encoder = createEncoder(encoding, settings)
  pipeline(stream, encoder, ignoreEnd)
  return encoder
}

function createEncoder (encoding: Encoding, settings: CompressSettings): Transform {
  if (encoding === 'br') {
    return createBrotliCompress({
      params: {
        [zlib.BROTLI_PARAM_MODE]: zlib.BROTLI_MODE_TEXT,
        [zlib.BROTLI_PARAM_QUALITY]: settings.quality,
        [zlib.BROTLI_PARAM_LGWIN]: BROTLI_WINDOW_BITS
      }
    })
  }
  return encoding === 'gzip' ? createGzip({ level: settings.level }) : createDeflate({ level: settings.level })
}

// The pipeline ends with the response: a client that went away is the stream's business (it
// learns it from the response), not an error to report.
function ignoreEnd (): void {}
