import { Readable } from 'node:stream'
import type { FastifyBaseLogger } from 'fastify'
import type { EventFormatter } from '../schema/compile.js'
import { retryField } from '../wire/format.js'
import type { Beating, HeartbeatTicker } from './heartbeat.js'
import type { StreamSink } from './sink.js'
import type { OpenSource, SourceContext } from './source.js'

/** Per-stream settings, resolved from the plugin's options and `reply.sse`'s. */
export interface EventStreamSettings {
  format: EventFormatter
  log: FastifyBaseLogger
  onInvalid: 'close' | 'skip'
  heartbeat: HeartbeatTicker | undefined
  retry: number | undefined
  lastEventId: string | undefined
  /** Called once when the stream ends, whatever ended it. */
  onEnd: () => void
}

// Frames produced while the socket is writable are joined and pushed once they reach
// FLUSH_AT characters, or when the event loop turns (setImmediate): a fast source costs one
// write per ~32 KiB instead of one per event, a slow one still sees each event at once.
const FLUSH_AT = 32 * 1024
// Readable's buffer: once this much is queued behind a slow socket, push() returns false and
// the source is not pulled again until the socket drains. The memory bound of a stream whose
// client stops reading is this, plus one batch, plus the socket's own buffers.
const HIGH_WATER_MARK = 64 * 1024
const HEARTBEAT = ':\n\n'

const noop = (): void => {}

/**
 * One SSE response body. It is the Readable handed to `reply.send`, so Fastify pipes it to the
 * socket (backpressure through pipe) and runs onSend/onResponse hooks and request logging as
 * for any reply. It pulls from the source only while the socket keeps up.
 */
export class EventStream extends Readable implements Beating, StreamSink {
  readonly #settings: EventStreamSettings
  // Made only when a source function asks for its signal: a channel subscriber never does, and
  // an AbortController with its signal costs ~1 KB of every idle stream.
  #controller: AbortController | undefined
  #endListener: (() => void) | undefined
  readonly #flushTask = (): void => {
    this.#flushScheduled = false
    this.#flush()
  }

  #batch = ''
  #flushScheduled = false
  #blocked = false
  #wake: (() => void) | undefined
  #ended = false
  #wroteSinceBeat = false
  #headFlushed = false

  constructor (settings: EventStreamSettings) {
    super({ highWaterMark: HIGH_WATER_MARK })
    this.#settings = settings
    if (settings.retry !== undefined) this.#batch = retryField(settings.retry) + '\n'
    settings.heartbeat?.add(this)
  }

  /** What a source function receives: aborted when the stream ends for any reason. */
  get context (): SourceContext {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#ended) this.#controller.abort()
    }
    const context: SourceContext = { signal: this.#controller.signal }
    if (this.#settings.lastEventId !== undefined) context.lastEventId = this.#settings.lastEventId
    return context
  }

  /** The request's Last-Event-ID (undefined when absent or too long). */
  get lastEventId (): string | undefined {
    return this.#settings.lastEventId
  }

  /**
   * Calls `listener` once when the stream ends, whatever ends it (at once if it has). One
   * listener: the push source attached to this stream.
   */
  onEnd (listener: () => void): void {
    if (this.#ended) listener()
    else this.#endListener = listener
  }

  /** True once the stream has ended: nothing more is written. */
  get ended (): boolean {
    return this.#ended
  }

  /**
   * Pulls the source until it ends, the client goes away or the server closes. Resolves after
   * the source's iterator was closed (its `finally` ran), never rejects.
   */
  async run ({ iterator, sync }: OpenSource<unknown>): Promise<void> {
    let done = false
    try {
      while (!this.#ended) {
        if (this.#blocked) {
          await this.#demand()
          continue
        }
        const step = sync ? (iterator as Iterator<unknown>).next() : await iterator.next()
        if (step.done === true) {
          done = true
          break
        }
        if (this.#ended) break
        this.#accept(step.value)
        // A sync source never awaits; give the event loop (other streams, timers, the socket)
        // a turn after every full batch.
        if (sync && this.#batch === '' && !this.#ended) await yieldToEventLoop()
      }
    } catch (err) {
      if (!this.#ended) this.#settings.log.error({ err }, 'fastify-conduit: the event source threw; the stream ends')
    } finally {
      this.stop()
      if (!done) await closeIterator(iterator, this.#settings.log)
    }
  }

  /**
   * Writes an already formatted frame (a channel's broadcast bytes, formatted once for all
   * subscribers). Returns false when the stream is backed up or ended.
   */
  writeFrame (frame: string): boolean {
    if (this.#ended) return false
    this.#batch += frame
    if (this.#batch.length >= FLUSH_AT) this.#flush()
    else this.#scheduleFlush()
    return !this.#blocked
  }

  /**
   * Writes bytes formatted once for many streams (a channel's broadcast): pushed as they are,
   * so every subscriber's socket gets the same Buffer and nothing is copied per subscriber.
   */
  writeBytes (bytes: Uint8Array): boolean {
    if (this.#ended) return false
    this.#flush()
    this.#wroteSinceBeat = true
    if (!this.push(bytes)) this.#blocked = true
    return !this.#blocked
  }

  /** Drops the connection now, without writing what is queued. */
  abort (): void {
    const res = destination(this)
    if (res !== undefined) res.destroy()
    else this.destroy()
  }

  /** Bytes queued in this stream and not yet handed to the socket (approximate, in characters). */
  get queued (): number {
    return this.#batch.length + this.readableLength
  }

  /** Ends the stream cleanly: what is batched is written, then the response ends. */
  stop (): void {
    if (this.#ended) return
    this.#ended = true
    this.#flush()
    this.push(null)
    this.#finish()
  }

  /** Called by the heartbeat ticker once per interval. */
  beat (): void {
    if (this.#wroteSinceBeat) {
      this.#wroteSinceBeat = false
      return
    }
    // Skipped while the socket is backed up: a heartbeat only proves liveness, and bytes
    // already queued do that.
    if (!this.#blocked && this.#batch === '' && this.readableLength === 0) {
      this.#batch = HEARTBEAT
      this.#flush()
    }
  }

  override _read (): void {
    if (!this.#headFlushed) {
      this.#headFlushed = true
      // Fastify sets the headers and pipes us; Node sends the head with the first byte. Send it
      // now, so clients see the stream open while the source is still working.
      flushHead(this)
    }
    this.#blocked = false
    const wake = this.#wake
    if (wake !== undefined) {
      this.#wake = undefined
      wake()
    }
  }

  override _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    // The client went away (Fastify destroys a piped body when the response closes early).
    this.#ended = true
    this.#batch = ''
    this.#finish()
    callback(err)
  }

  #accept (msg: unknown): void {
    let frame: string
    try {
      frame = this.#settings.format(msg as never)
    } catch (err) {
      this.#invalid(err as Error & { code?: string })
      return
    }
    this.#batch += frame
    if (this.#batch.length >= FLUSH_AT) this.#flush()
    else this.#scheduleFlush()
  }

  #invalid (err: Error & { code?: string }): void {
    const policy = this.#settings.onInvalid
    // The message names the event, the schema path and TypeBox's reason, never the payload.
    this.#settings.log.error({ code: err.code, reason: err.message },
      policy === 'close'
        ? 'fastify-conduit: invalid event not sent; the stream ends (onInvalid: close)'
        : 'fastify-conduit: invalid event not sent; skipped (onInvalid: skip)')
    if (policy === 'close') this.stop()
  }

  #scheduleFlush (): void {
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      setImmediate(this.#flushTask)
    }
  }

  #flush (): void {
    const batch = this.#batch
    if (batch === '') return
    this.#batch = ''
    this.#wroteSinceBeat = true
    if (!this.push(batch)) this.#blocked = true
  }

  #demand (): Promise<void> {
    return new Promise((resolve) => { this.#wake = resolve })
  }

  #finish (): void {
    this.#controller?.abort()
    this.#settings.heartbeat?.delete(this)
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
    const onEnd = this.#settings.onEnd
    this.#settings.onEnd = noop
    onEnd()
    const listener = this.#endListener
    this.#endListener = undefined
    listener?.()
  }
}

interface Destination {
  headersSent: boolean
  flushHeaders (): void
  destroy (): void
}

/** The response Fastify piped this stream into (`payload.pipe(res)`), if piping has begun. */
function destination (stream: EventStream): Destination | undefined {
  return (stream as unknown as { _readableState: { pipes: Destination[] } })._readableState.pipes[0]
}

function flushHead (stream: EventStream): void {
  const res = destination(stream)
  if (res !== undefined && !res.headersSent) res.flushHeaders()
}

function yieldToEventLoop (): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

async function closeIterator (iterator: Iterator<unknown> | AsyncIterator<unknown>, log: FastifyBaseLogger): Promise<void> {
  try {
    await iterator.return?.()
  } catch (err) {
    log.error({ err }, 'fastify-conduit: closing the event source threw')
  }
}
