import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import type { FastifyBaseLogger } from 'fastify'
import { publishInvalidEvent } from '../diagnostics.js'
import type { StreamEndReason, StreamObserver } from '../diagnostics.js'
import { UnflushableEncodingError } from '../errors.js'
import type { EventFormatter } from '../schema/compile.js'
import { retryField } from '../wire/format.js'
import { TICKS_PER_INTERVAL } from './heartbeat.js'
import type { Beating, HeartbeatTicker } from './heartbeat.js'
import { EncoderFlush, isFlushable } from './encoder-flush.js'
import type { ResponseTarget } from './response.js'
import { kFrame } from './sink.js'
import type { FramedMessage, StreamSink } from './sink.js'
import { closeIterator } from './source.js'
import type { OpenSource, SourceContext } from './source.js'

/** Per-stream settings, resolved from the plugin's options and `reply.sse`'s. */
export interface ServerEventStreamSettings {
  format: EventFormatter
  /**
   * True when `format` is the plain formatter (the route declares no `schema.sse`): a frozen
   * channel message is then written as the channel framed it (see {@link kFrame}).
   */
  framed?: boolean
  log: FastifyBaseLogger
  onInvalid: 'close' | 'skip'
  heartbeat: HeartbeatTicker | undefined
  retry: number | undefined
  lastEventId: string | undefined
  /** Called once when the response is over (see {@link ServerEventStream.responseClosed}). */
  onClose: () => void
  /** Counts bytes and events for diagnostics_channel; only while someone subscribes (see lib/diagnostics.ts). */
  observer?: StreamObserver | undefined
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
// The longest a stream pulls its source without letting the event loop turn: 2 ms keeps every
// other stream, timer and socket of the server responsive whatever one source does (a
// measured 1,000,000 skipped invalid events used to hold the loop ~6 s). The clock is read
// every CLOCK_STRIDE + 1 steps, so the hot path pays for it once per 8 events.
const TURN_BUDGET_MS = 2
const CLOCK_STRIDE = 7

/** The response, tagged with the stream that writes it: listeners shared by every stream find it there. */
const kStream = Symbol('fastify-conduit.stream')
interface TaggedResponse {
  [kStream]: ServerEventStream
}

/**
 * One SSE response body. It is the Readable handed to `reply.send`, so Fastify runs the
 * onSend hooks (which may wrap it: compression, a PassThrough), pipes the result to the
 * response, and logs the request as for any reply. It is also handed the response itself
 * (`reply.raw`), and learns everything about the response from it, never from stream
 * internals: when Fastify pipes the final body in (`'pipe'`: the head is flushed then, and a
 * compressor found there is flushed per batch), and when the response is over (`'close'`:
 * finished, or the client went away). It pulls from the source only while the socket keeps up.
 */
export class ServerEventStream extends Readable implements Beating, StreamSink {
  readonly #settings: ServerEventStreamSettings
  readonly #response: ResponseTarget
  // Made only when a source function asks for its signal: a channel subscriber never does, and
  // an AbortController with its signal costs ~1 KB of every idle stream.
  #controller: AbortController | undefined
  #endListener: (() => void) | undefined
  #closedPromise: Promise<void> | undefined
  #resolveClosed: (() => void) | undefined
  // Made on the first batch: a channel's subscriber is written shared bytes, never batches, and
  // an idle stream's memory is what a server with 10,000 of them pays.
  #flushTask: (() => void) | undefined

  #batch = ''
  #flushScheduled = false
  #blocked = false
  #wake: (() => void) | undefined
  #ended = false
  #endReason: StreamEndReason | undefined
  #closed = false
  // The heartbeat ticker's count at the last write; see TICKS_PER_INTERVAL.
  #lastWrite = 0
  // For stats(): bytes pushed so far, and the chunks among them shared with other streams (a
  // channel's broadcast Buffers), with where each ends, oldest first; see heldBytes().
  #pushedBytes = 0
  #shared: Array<{ readonly bytes: Uint8Array, readonly end: number }> | undefined

  constructor (settings: ServerEventStreamSettings, response: ResponseTarget) {
    super({ highWaterMark: HIGH_WATER_MARK })
    this.#settings = settings
    this.#response = response
    // Queued now, not batched with the first event: a source may take minutes to produce one,
    // and the client should learn its retry (and the heartbeats should start) at once.
    if (settings.retry !== undefined) this.#pushText(retryField(settings.retry) + '\n')
    if (settings.heartbeat !== undefined) {
      this.#lastWrite = settings.heartbeat.tick
      settings.heartbeat.add(this)
    }
    // Listeners shared by every stream, not closures per stream: an idle stream's memory is
    // what a server with 10,000 of them pays.
    ;(response as unknown as TaggedResponse)[kStream] = this
    response.on('pipe', ServerEventStream.#onResponsePipe)
    response.on('close', ServerEventStream.#onResponseClose)
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

  /** The request's logger. */
  get log (): FastifyBaseLogger {
    return this.#settings.log
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

  /** Why the stream ended; undefined while it runs. */
  get endReason (): StreamEndReason | undefined {
    return this.#endReason
  }

  /**
   * Resolves once the response is over: its last byte was handed to the socket and it
   * finished, or the connection went away (or was destroyed). Until then Fastify still owns a
   * response in flight, so `reply.sse` must not settle before this (a handler's settled
   * promise with an unsent reply makes Fastify send an empty one).
   */
  responseClosed (): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#closedPromise ??= new Promise((resolve) => { this.#resolveClosed = resolve })
    return this.#closedPromise
  }

  /**
   * Resolves once `running` (the source's run) settled and the response is over; see
   * {@link responseClosed}. What `reply.sse` returns.
   */
  settled (running: Promise<void>): Promise<void> {
    return running.then(() => this.responseClosed())
  }

  /** True once the response is over; see {@link responseClosed}. */
  get isResponseClosed (): boolean {
    return this.#closed
  }

  /**
   * Pulls the source until it ends, the client goes away or the server closes. Resolves after
   * the source's iterator was closed (its `finally` ran), never rejects.
   */
  async run ({ iterator, sync }: OpenSource<unknown>): Promise<void> {
    let done = false
    let steps = 0
    let turnEnds = performance.now() + TURN_BUDGET_MS
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
        // Give the event loop (other streams, timers, sockets, signals) a turn after every full
        // batch and after TURN_BUDGET_MS of pulling: neither backpressure nor the source's
        // awaits are enough, since a sync iterable never awaits, an async one may resolve
        // every step at once (microtasks never let the loop turn), and a source of events that
        // are all skipped as invalid pushes nothing for backpressure to stop.
        if (this.#accept(step.value) || ((++steps & CLOCK_STRIDE) === 0 && performance.now() >= turnEnds)) {
          await yieldToEventLoop()
          turnEnds = performance.now() + TURN_BUDGET_MS
        }
      }
    } catch (err) {
      if (!this.#ended) {
        this.#endReason = 'error'
        this.#settings.log.error({ err }, 'fastify-conduit: the event source threw; the stream ends')
      }
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
    this.#wrote()
    const observer = this.#settings.observer
    if (observer !== undefined) observer.wrote(bytes)
    this.#pushedBytes += bytes.length
    if (!this.push(bytes)) this.#blocked = true
    // A chunk is recorded (for heldBytes) only if it stayed queued: while the socket keeps up,
    // push() hands it on at once and nothing is queued, so nothing is held, and the hot path
    // of a broadcast allocates nothing per stream.
    const shared = this.#shared
    if (this.readableLength === 0) {
      if (shared !== undefined) shared.length = 0
    } else if (shared === undefined) {
      this.#shared = [{ bytes, end: this.#pushedBytes }]
    } else {
      this.#forgetConsumed(shared)
      shared.push({ bytes, end: this.#pushedBytes })
    }
    return !this.#blocked
  }

  /** False while the socket is backed up: a writer that can wait should (see {@link drained}). */
  get writable (): boolean {
    return !this.#blocked || this.#ended
  }

  /**
   * Resolves once the socket takes more (or the stream ended): how a push source (a channel's
   * replay) paces itself. One waiter at a time, as for the pull loop, which a push source
   * does not use.
   */
  drained (): Promise<void> {
    return this.writable ? Promise.resolve() : this.#demand()
  }

  /** Drops the connection now, without writing what is queued. */
  abort (): void {
    if (!this.#ended) this.#endReason = 'aborted'
    this.#response.destroy()
    this.destroy()
  }

  /** Bytes queued in this stream and not yet handed to the socket (approximate, in characters). */
  get queued (): number {
    return this.#batch.length + this.readableLength
  }

  /**
   * What this stream really holds, for `stats().queuedBytes`: returns the bytes queued here
   * that are its own, and adds to `shared` the chunks still queued that are shared with other
   * streams (a channel's broadcast Buffers), which the caller counts once however many streams
   * hold them. A Readable hands its chunks on whole and in order, so the chunks still queued
   * are those that end after the bytes it has handed on.
   */
  heldBytes (shared: Set<Uint8Array>): number {
    let own = this.#batch.length + this.readableLength
    const chunks = this.#shared
    if (chunks !== undefined) {
      this.#forgetConsumed(chunks)
      for (const { bytes } of chunks) {
        own -= bytes.length
        shared.add(bytes)
      }
    }
    return own
  }

  /** Ends the stream cleanly: what is batched is written, then the response ends. */
  stop (reason: StreamEndReason = 'end'): void {
    if (this.#ended) return
    this.#ended = true
    this.#endReason ??= reason
    this.#flush()
    this.push(null)
    this.#finish()
  }

  /** Called by the heartbeat ticker on every tick. */
  beat (tick: number): void {
    if (tick - this.#lastWrite <= TICKS_PER_INTERVAL) return
    // Skipped while the socket is backed up: a heartbeat only proves liveness, and bytes
    // already queued do that.
    if (!this.#blocked && this.#batch === '' && this.readableLength === 0) {
      this.#batch = HEARTBEAT
      this.#flush()
    }
    // The heartbeat went out at this tick's instant, unlike a write between ticks: the next is
    // due a whole interval later, not an interval and a tick (the option means idleness).
    this.#lastWrite = tick - 1
  }

  override _read (): void {
    this.#blocked = false
    const wake = this.#wake
    if (wake !== undefined) {
      this.#wake = undefined
      wake()
    }
  }

  override _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    // The client went away (Fastify destroys a piped body when the response closes early).
    this.#abandon()
    callback(err)
  }

  // Fastify pipes the final body (this stream, or what an onSend hook made of it) into the
  // response once the onSend hooks are done and its status and headers are set on it: the
  // one moment the head can be sent, complete, before the first event exists.
  static readonly #onResponsePipe = function (this: ResponseTarget, body: Readable): void {
    this.removeListener('pipe', ServerEventStream.#onResponsePipe)
    ;(this as unknown as TaggedResponse)[kStream].#piped(body)
  }

  static readonly #onResponseClose = function (this: ResponseTarget): void {
    (this as unknown as TaggedResponse)[kStream].#responseClose()
  }

  #piped (body: Readable): void {
    const response = this.#response
    const encoding = response.getHeader('content-encoding')
    if (body !== (this as Readable) && encoding !== undefined && encoding !== 'identity') {
      if (!isFlushable(body)) {
        this.#refuse(body, String(encoding))
        return
      }
      const flush = new EncoderFlush(body)
      // The pipe's own 'data' listener (added first) has written each chunk when this runs.
      this.on('data', flush.schedule)
      // What flowed into the encoder before this moment (the source may have run while the
      // onSend hooks did) gets its flush too.
      flush.schedule()
    }
    if (!response.headersSent) response.flushHeaders()
  }

  /**
   * Answers `err` instead of the stream, before any byte of the stream went out: events that
   * would arrive only when an encoder's buffer fills are worse than no stream (the app would
   * look like it works and deliver nothing live), and an error status, unlike a 200 that ends,
   * makes an EventSource stop instead of reconnecting forever.
   */
  #refuse (body: Readable, encoding: string): void {
    const response = this.#response
    const err = new UnflushableEncodingError(encoding)
    const statusCode = 500
    body.unpipe(response as unknown as NodeJS.WritableStream)
    this.#settings.log.error({ err }, 'fastify-conduit: event stream refused')
    response.statusCode = statusCode
    // An error reply, not a stream: none of the stream's own headers (see wire/headers.ts).
    for (const name of ['content-encoding', 'cache-control', 'x-accel-buffering', 'connection']) response.removeHeader(name)
    response.setHeader('content-type', 'application/json; charset=utf-8')
    response.end(JSON.stringify({ statusCode, code: err.code, error: 'Internal Server Error', message: err.message }))
    this.stop('refused')
  }

  #responseClose (): void {
    this.#closed = true
    // Over before this stream ended: the client went away, or the response was never handed
    // this body (an onSend hook or an error replaced it).
    this.#abandon()
    this.#settings.onClose()
    this.#resolveClosed?.()
  }

  /** Formats `msg` into the batch; true when that filled the batch and it was pushed. */
  #accept (msg: unknown): boolean {
    let frame: string | undefined
    // subscribe() iterated in a generator: the message the channel formatted once, yielded
    // back, costs no serialization per subscriber (measured: 1,000 subscribers spent ~40% of
    // their CPU re-serializing what every one of them got).
    if (this.#settings.framed === true && typeof msg === 'object' && msg !== null) frame = (msg as FramedMessage)[kFrame]
    if (frame === undefined) {
      try {
        frame = this.#settings.format(msg as never)
      } catch (err) {
        this.#invalid(err as Error & { code?: string })
        return false
      }
    }
    this.#batch += frame
    if (this.#batch.length < FLUSH_AT) {
      this.#scheduleFlush()
      return false
    }
    this.#flush()
    return true
  }

  #invalid (err: Error & { code?: string }): void {
    const policy = this.#settings.onInvalid
    // The message names the event, the schema path and TypeBox's reason, never the payload.
    this.#settings.log.error({ code: err.code, reason: err.message },
      policy === 'close'
        ? 'fastify-conduit: invalid event not sent; the stream ends (onInvalid: close)'
        : 'fastify-conduit: invalid event not sent; skipped (onInvalid: skip)')
    publishInvalidEvent(this.#settings.observer, err, policy)
    if (policy === 'close') this.stop('invalid')
  }

  #scheduleFlush (): void {
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      setImmediate(this.#flushTask ??= () => {
        this.#flushScheduled = false
        this.#flush()
      })
    }
  }

  #flush (): void {
    const batch = this.#batch
    if (batch === '') return
    this.#batch = ''
    this.#wrote()
    if (!this.#pushText(batch)) this.#blocked = true
  }

  // The conversion push() would make of a string (UTF-8), made here to count its bytes.
  #pushText (text: string): boolean {
    const chunk = Buffer.from(text)
    this.#pushedBytes += chunk.length
    this.#settings.observer?.wrote(chunk)
    return this.push(chunk)
  }

  #forgetConsumed (chunks: Array<{ readonly end: number }>): void {
    const consumed = this.#pushedBytes - this.readableLength
    let gone = 0
    while (gone < chunks.length && chunks[gone].end <= consumed) gone++
    if (gone > 0) chunks.splice(0, gone)
  }

  #wrote (): void {
    const ticker = this.#settings.heartbeat
    if (ticker !== undefined) this.#lastWrite = ticker.tick
  }

  #demand (): Promise<void> {
    return new Promise((resolve) => { this.#wake = resolve })
  }

  /** Ends the stream without writing what is batched: nobody will read it. */
  #abandon (): void {
    if (this.#ended) return
    this.#ended = true
    this.#endReason ??= 'client'
    this.#batch = ''
    this.#finish()
  }

  #finish (): void {
    this.#controller?.abort()
    this.#settings.heartbeat?.delete(this)
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
    const listener = this.#endListener
    this.#endListener = undefined
    listener?.()
  }
}

function yieldToEventLoop (): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
