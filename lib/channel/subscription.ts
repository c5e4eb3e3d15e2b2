import { kAttach } from '../stream/sink.js'
import type { AttachableSource, StreamSink } from '../stream/sink.js'
import type { ChannelSubscription } from './types.js'

/** What the subscription asks of the channel's subscriber behind it. */
export interface SubscriptionOwner {
  /** Called once when the subscription ends, whatever ended it. */
  detach (): void
  /**
   * `reply.sse(subscription)`: the subscriber becomes a stream's, on the channel's shared path.
   * `queued` are the frames the iterator held and nobody pulled, written first.
   */
  attach (sink: StreamSink, queued: readonly string[]): Promise<void>
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined })

/**
 * The iterator behind `channel.subscribe()`. The channel pushes messages into it; the consumer
 * pulls. It is bounded: a consumer that lets more than `maxBytes` of frames pile up is cut off
 * with the error the channel gives (SlowSubscriberError) rather than growing without bound.
 * Handed to `reply.sse`, it stops being an iterator: the channel writes its frames to the
 * stream directly, as for `reply.sse(channel)`.
 */
export class Subscription<Message> implements ChannelSubscription<Message>, AttachableSource {
  ready!: Promise<void>
  readonly #maxBytes: number
  readonly #owner: SubscriptionOwner
  // Messages waiting, each followed by its frame (for the memory bound, and for a stream it is
  // handed to): pairs laid flat, so that queueing allocates nothing per message and
  // subscriber (1,000 iterators × 1,000 events made a million small objects for the GC).
  #queue: Array<Message | string> = []
  #head = 0
  #bytes = 0
  #waiting: { resolve: (result: IteratorResult<Message>) => void, reject: (err: Error) => void } | undefined
  #drained: (() => void) | undefined
  #error: Error | undefined
  #ended = false
  #gap = false

  constructor (maxBytes: number, owner: SubscriptionOwner) {
    this.#maxBytes = maxBytes
    this.#owner = owner
  }

  get gap (): boolean {
    return this.#gap
  }

  /** Bytes of frames queued and not yet pulled. */
  get bytes (): number {
    return this.#bytes
  }

  /** Marks that the replay could not start right after the subscriber's Last-Event-ID. */
  markGap (): void {
    this.#gap = true
  }

  /**
   * Queues one message. Returns false (and ends the subscription with `overflow()`'s error)
   * when the consumer is more than `maxBytes` behind. Never called once it ended: its
   * subscriber left the channel then.
   */
  push (message: Message, frame: string, overflow: () => Error): boolean {
    const waiting = this.#waiting
    if (waiting !== undefined) {
      this.#waiting = undefined
      waiting.resolve({ done: false, value: message })
      return true
    }
    const size = frame.length
    if (this.#bytes > 0 && this.#bytes + size > this.#maxBytes) {
      this.fail(overflow())
      return false
    }
    this.#queue.push(message, frame)
    this.#bytes += size
    return true
  }

  /**
   * Resolves once the consumer has pulled everything queued (or the subscription ended): a
   * replay waits on it rather than queueing past `maxBytes`. Call it only while something is
   * queued (`bytes > 0`); one waiter at a time.
   */
  drained (): Promise<void> {
    return new Promise((resolve) => { this.#drained = resolve })
  }

  /** Ends the iteration after what is queued. */
  end (): void {
    if (this.#ended) return
    this.#ended = true
    this.#owner.detach()
    this.#release()
  }

  /** Ends the iteration now: what is queued is dropped and `next()` rejects with `err`. */
  fail (err: Error): void {
    // Called only while it runs: its subscriber left the channel when it ended.
    this.#clear()
    const waiting = this.#waiting
    this.#waiting = undefined
    if (waiting !== undefined) waiting.reject(err)
    else this.#error = err
    this.end()
  }

  next (): Promise<IteratorResult<Message>> {
    if (this.#head < this.#queue.length) {
      const message = this.#queue[this.#head] as Message
      const frame = this.#queue[this.#head + 1] as string
      this.#head += 2
      this.#bytes -= frame.length
      // Compact once the consumed prefix dominates, so a long-lived queue does not grow.
      if (this.#head > 2048 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head)
        this.#head = 0
      }
      if (this.#bytes === 0) this.#wakeDrained()
      return Promise.resolve({ done: false, value: message })
    }
    const error = this.#error
    if (error !== undefined) {
      this.#error = undefined
      return Promise.reject(error)
    }
    if (this.#ended) return Promise.resolve(DONE)
    return new Promise((resolve, reject) => { this.#waiting = { resolve, reject } })
  }

  return (): Promise<IteratorResult<Message>> {
    this.#clear()
    this.end()
    return Promise.resolve(DONE)
  }

  [Symbol.asyncIterator] (): this {
    return this
  }

  /**
   * `reply.sse(subscription)`: what is queued goes to the stream first, then the channel writes
   * to it as to any `reply.sse(channel)` stream (shared bytes, no per-message promise). The
   * iterator is done from then on. An ended subscription ends the stream at once.
   */
  [kAttach] (sink: StreamSink): Promise<void> {
    if (this.#ended) {
      sink.stop()
      return Promise.resolve()
    }
    const queued: string[] = []
    for (let i = this.#head + 1; i < this.#queue.length; i += 2) queued.push(this.#queue[i] as string)
    this.#clear()
    this.#ended = true
    this.#release()
    return this.#owner.attach(sink, queued)
  }

  #clear (): void {
    this.#queue = []
    this.#head = 0
    this.#bytes = 0
  }

  /** Wakes whoever waits: a pending `next()` gets done, a paced replay goes on (and sees the end). */
  #release (): void {
    this.#waiting?.resolve(DONE)
    this.#waiting = undefined
    this.#wakeDrained()
  }

  #wakeDrained (): void {
    const drained = this.#drained
    this.#drained = undefined
    drained?.()
  }
}
