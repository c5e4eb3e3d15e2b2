import type { ChannelSubscription } from './types.js'

/** A message waiting in a subscription, with the size of its frame (for the memory bound). */
interface Queued<Message> {
  readonly message: Message
  readonly size: number
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined })

/**
 * The iterator behind `channel.subscribe()`. The channel pushes messages into it; the consumer
 * pulls. It is bounded: a consumer that lets more than `maxBytes` of frames pile up is cut off
 * with the error the channel gives (SlowSubscriberError) rather than growing without bound.
 */
export class Subscription<Message> implements ChannelSubscription<Message> {
  ready!: Promise<void>
  readonly #maxBytes: number
  readonly #detach: () => void
  #queue: Array<Queued<Message>> = []
  #head = 0
  #bytes = 0
  #waiting: { resolve: (result: IteratorResult<Message>) => void, reject: (err: Error) => void } | undefined
  #error: Error | undefined
  #ended = false
  #gap = false

  /** `detach` is called once when the subscription ends, whatever ended it. */
  constructor (maxBytes: number, detach: () => void) {
    this.#maxBytes = maxBytes
    this.#detach = detach
  }

  get gap (): boolean {
    return this.#gap
  }

  /** Marks that the replay could not start right after the subscriber's Last-Event-ID. */
  markGap (): void {
    this.#gap = true
  }

  /**
   * Queues one message. Returns false (and ends the subscription with `overflow()`'s error)
   * when the consumer is more than `maxBytes` behind.
   */
  push (message: Message, size: number, overflow: () => Error): boolean {
    if (this.#ended) return false
    const waiting = this.#waiting
    if (waiting !== undefined) {
      this.#waiting = undefined
      waiting.resolve({ done: false, value: message })
      return true
    }
    if (this.#bytes > 0 && this.#bytes + size > this.#maxBytes) {
      this.fail(overflow())
      return false
    }
    this.#queue.push({ message, size })
    this.#bytes += size
    return true
  }

  /** Ends the iteration after what is queued. */
  end (): void {
    if (this.#ended) return
    this.#ended = true
    this.#detach()
    this.#waiting?.resolve(DONE)
    this.#waiting = undefined
  }

  /** Ends the iteration now: what is queued is dropped and `next()` rejects with `err`. */
  fail (err: Error): void {
    if (this.#ended) return
    this.#queue = []
    this.#head = 0
    this.#bytes = 0
    const waiting = this.#waiting
    this.#waiting = undefined
    if (waiting !== undefined) waiting.reject(err)
    else this.#error = err
    this.end()
  }

  next (): Promise<IteratorResult<Message>> {
    if (this.#head < this.#queue.length) {
      const { message, size } = this.#queue[this.#head++]
      this.#bytes -= size
      // Compact once the consumed prefix dominates, so a long-lived queue does not grow.
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head)
        this.#head = 0
      }
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
    this.#queue = []
    this.#head = 0
    this.#bytes = 0
    this.end()
    return Promise.resolve(DONE)
  }

  [Symbol.asyncIterator] (): this {
    return this
  }
}
