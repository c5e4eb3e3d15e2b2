import type { FastifyBaseLogger } from 'fastify'
import { publishBusError, publishReplayGap, publishSlowSubscriber } from '../diagnostics.js'
import type { StreamSink } from '../stream/sink.js'
import { decodeMessage } from './decode-entry.js'
import type { Entry } from './decode-entry.js'
import type { ChannelCounters, FanOut } from './fan-out.js'
import type { Receiver, ReplaySeam } from './replay-seam.js'
import { Subscription } from './subscription.js'

/**
 * Written before a replay that could not start right after the client's Last-Event-ID (older
 * than the history, or unknown). A comment frame: EventSource ignores it, so applications need
 * not handle anything; a client that reads comments learns that events were missed.
 */
export const GAP_FRAME = ': gap\n\n'

/** A `where()` predicate, over the decoded message; only `true` delivers. */
export type Predicate = (message: never) => boolean

/** What a subscriber needs of its channel. */
export interface SubscriberHost {
  readonly name: string
  readonly maxBufferedBytes: number
  readonly counters: ChannelCounters
  readonly log: FastifyBaseLogger
  readonly fanOut: FanOut
  readonly seam: ReplaySeam
  /** Stops listening on the bus if nobody subscribes any more. */
  release (): void
}

/**
 * One subscriber of a channel on this instance: a stream (`reply.sse(channel)`,
 * `reply.sse(channel.where(...))`, `reply.sse(channel.subscribe())`) or an iterator
 * (`channel.subscribe()` in user code). It goes through the replay seam, then onto the shared
 * live path of the fan-out; `filter` (from `where()`) selects what it gets, on replay as live.
 */
export class Subscriber implements Receiver {
  left = false
  pending: Entry[] = []
  pendingBytes = 0
  after: string | undefined = undefined
  overflowed = false
  /** The Last-Event-ID it joined with, for diagnostics. */
  lastEventId: string | undefined = undefined
  /**
   * A record's reader without a Last-Event-ID, replaying it from the start. A record is never
   * trimmed (its history is one more than the events its source may write), so an incomplete
   * replay there is no gap: Redis < 7 cannot say whether a stream was trimmed, and says so.
   */
  recordStart = false
  readonly filter: Predicate | undefined
  readonly #host: SubscriberHost
  #sink: StreamSink | undefined
  #iterator: Subscription<unknown> | undefined
  #signal: AbortSignal | undefined
  #onLeave: (() => void) | undefined
  // Made only for an iterator given a signal: a stream's subscriber (most of an idle server's
  // memory) never needs it.
  #abort: (() => void) | undefined

  constructor (host: SubscriberHost, filter: Predicate | undefined) {
    this.#host = host
    this.filter = filter
  }

  /** The stream it writes to, once it is a stream's. */
  get sink (): StreamSink | undefined {
    return this.#sink
  }

  /** Makes it a stream's subscriber; resolves when it stops writing to the stream. */
  stream (sink: StreamSink): Promise<void> {
    this.#sink = sink
    return new Promise((resolve) => {
      this.#onLeave = resolve
      sink.onEnd(() => this.detach())
    })
  }

  /** Makes it an iterator's subscriber, ended by `signal` when given. */
  iterate (signal: AbortSignal | undefined): Subscription<unknown> {
    const iterator = new Subscription<unknown>(this.#host.maxBufferedBytes, {
      detach: () => this.detach(),
      attach: (sink, queued) => this.#attach(sink, queued)
    })
    this.#iterator = iterator
    if (signal !== undefined) {
      this.#signal = signal
      this.#abort = () => { this.close() }
      signal.addEventListener('abort', this.#abort, { once: true })
    }
    return iterator
  }

  /**
   * Whether `message` (decoded once per entry, shared) is for this subscriber: always without a
   * filter; with one, when it returns `true`. Data that could not be decoded is never selected
   * (a filter that cannot look must not let through). A filter that throws ends this subscriber
   * only, logged.
   */
  selects (message: unknown): boolean {
    const filter = this.filter
    if (filter === undefined) return true
    // Called only while it is on the channel (a subscriber that left is skipped before).
    if (message === undefined) return false
    try {
      return (filter as (message: unknown) => boolean)(message) === true
    } catch (err) {
      this.#threw(err as Error)
      return false
    }
  }

  /**
   * {@link selects} over a whole batch at once (the live path of filtered streams): sets
   * `mask[i]` to 1 for each message selected, 0 otherwise, and returns how many were. One
   * try/catch per batch, not per message; a filter that throws ends this subscriber (logged)
   * and selects nothing.
   */
  selectBatch (messages: readonly unknown[], mask: Uint8Array): number {
    const filter = this.filter as (message: unknown) => boolean
    let selected = 0
    try {
      for (let i = 0; i < messages.length; i++) {
        const message = messages[i]
        const keep = message !== undefined && filter(message) === true ? 1 : 0
        mask[i] = keep
        selected += keep
      }
    } catch (err) {
      this.#threw(err as Error)
      return 0
    }
    return selected
  }

  /** Queues a message (decoded, selected) in its iterator, counted as sent unless refused. */
  push (message: unknown, frame: string): void {
    if ((this.#iterator as Subscription<unknown>).push(message, frame, this.#host.fanOut.overflow)) this.#host.counters.sentEvents++
  }

  write (entries: readonly Entry[], gap: boolean): void {
    if (gap) this.#gap()
    for (const entry of entries) {
      if (this.left) return
      this.#writeOne(entry)
    }
  }

  /**
   * Writes a page of replay, paced: a stream's next entry waits while its socket is backed up,
   * an iterator's while its queue is full. So a resuming subscriber holds about a page and its
   * own buffers, however long the history and however slowly it reads.
   */
  async replay (entries: readonly Entry[], gap: boolean): Promise<void> {
    if (gap) this.#gap()
    for (const entry of entries) {
      const waiting = this.#room(entry.frame.length)
      if (waiting !== undefined) await waiting
      if (this.left) return
      this.#writeOne(entry)
    }
    const waiting = this.#room(0)
    if (waiting !== undefined) await waiting
  }

  fits (entries: readonly Entry[]): boolean {
    const sink = this.#sink
    if (sink !== undefined) return sink.writable
    let bytes = (this.#iterator as Subscription<unknown>).bytes
    for (const entry of entries) bytes += entry.frame.length
    return bytes <= this.#host.maxBufferedBytes
  }

  live (): void {
    this.#host.fanOut.subscribe(this)
  }

  close (): void {
    const sink = this.#sink
    if (sink === undefined) {
      this.#iterator?.end()
      return
    }
    this.detach()
    sink.stop()
  }

  drop (): void {
    const sink = this.#sink
    if (sink === undefined) {
      this.#iterator?.fail(this.#host.fanOut.overflow())
      return
    }
    this.detach()
    this.#host.counters.slowDisconnects++
    publishSlowSubscriber(this.#host.name, 'stream', this.#host.maxBufferedBytes)
    this.#host.log.warn({ channel: this.#host.name, queued: sink.queued },
      'fastify-conduit: a channel subscriber fell behind maxBufferedBytes; disconnected (it can resume with Last-Event-ID)')
    sink.abort()
  }

  /** The bus failed it (listen or replay): a stream ends, logged; an iterator's `next()` rejects. */
  failed (err: Error): void {
    if (this.left) return
    publishBusError('subscribe', this.#host.name, err)
    if (this.#sink !== undefined) {
      this.#host.log.error({ err, channel: this.#host.name }, 'fastify-conduit: channel subscription failed; the stream ends')
      this.close()
    } else {
      this.#iterator?.fail(err)
    }
  }

  /** Leaves the channel, once, whatever ended it. */
  detach (): void {
    if (this.left) return
    this.left = true
    this.#signal?.removeEventListener('abort', this.#abort as () => void)
    this.#host.fanOut.unsubscribe(this)
    this.#host.seam.leave(this)
    this.#host.release()
    const onLeave = this.#onLeave
    this.#onLeave = undefined
    onLeave?.()
  }

  /** `reply.sse(subscription)`: from iterator to stream, where it stands (joining, settling or live). */
  #attach (sink: StreamSink, queued: readonly string[]): Promise<void> {
    const fanOut = this.#host.fanOut
    const wasLive = fanOut.unsubscribe(this)
    this.#iterator = undefined
    this.#sink = sink
    if (wasLive) fanOut.subscribe(this)
    for (const frame of queued) sink.writeFrame(frame)
    // A stream already over detaches it at once.
    return this.stream(sink)
  }

  #gap (): void {
    /* c8 ignore next -- only on Redis < 7, which cannot tell (the tests run Redis 7) */
    if (this.recordStart) return
    publishReplayGap(this.#host.name, this.#sink !== undefined ? 'stream' : 'iterator', this.lastEventId)
    if (this.#sink !== undefined) this.#sink.writeFrame(GAP_FRAME)
    else this.#iterator?.markGap()
  }

  #writeOne (entry: Entry): void {
    // A record's end (only a record's channel lets one through): its readers are done.
    if (entry.body === '') {
      this.close()
      return
    }
    const sink = this.#sink
    if (sink !== undefined) {
      if (this.filter !== undefined && !this.selects(this.#decode(entry))) return
      sink.writeFrame(entry.frame)
      this.#host.counters.sentEvents++
      return
    }
    const message = this.#decode(entry)
    if (message === undefined || !this.selects(message)) return
    this.push(message, entry.frame)
  }

  /** Undefined when there is room for `size` more bytes, else a promise of room. */
  #room (size: number): Promise<void> | undefined {
    const sink = this.#sink
    if (sink !== undefined) return sink.writable ? undefined : sink.drained()
    // A subscriber that left has an empty queue (failed) or is no longer written to.
    const iterator = this.#iterator as Subscription<unknown>
    const bytes = iterator.bytes
    return bytes > 0 && bytes + size > this.#host.maxBufferedBytes ? iterator.drained() : undefined
  }

  #decode (entry: Entry): unknown {
    return decodeMessage(entry, this.#host.name, this.#host.log)
  }

  #threw (err: Error): void {
    // A stream's on its request's logger (the line carries the request id: which client).
    ;(this.#sink?.log ?? this.#host.log).error({ err, channel: this.#host.name }, 'fastify-conduit: a channel subscriber\'s where() predicate threw; that subscriber is ended')
    this.#end(err)
  }

  #end (err: Error): void {
    if (this.#sink !== undefined) this.close()
    else this.#iterator?.fail(err)
  }
}
