import type { FastifyBaseLogger } from 'fastify'
import { publishSlowSubscriber } from '../diagnostics.js'
import { SlowSubscriberError } from '../errors.js'
import type { StreamSink } from '../stream/sink.js'
import { decodeMessage } from './decode-entry.js'
import type { Entry } from './decode-entry.js'
import type { Receiver, ReplaySeam } from './replay-seam.js'
import type { Subscription } from './subscription.js'

/** Counters shared by the channels of one Fastify instance (see `app.sse.stats()`). */
export interface ChannelCounters {
  publishedEvents: number
  sentEvents: number
  slowDisconnects: number
}

/** A stream's receiver: on the live path, its sink gets the shared bytes. */
export interface SinkReceiver extends Receiver {
  readonly sink: StreamSink
}

/**
 * The live path of one channel on this instance. What the bus delivers within one event-loop
 * turn becomes one batch; the batch goes, as one Buffer, to every live stream, and, parsed once
 * per entry, to every live iterator. A subscriber that falls more than `maxBufferedBytes`
 * behind is cut off rather than holding the others back or making the server buffer without
 * bound.
 */
export class FanOut<Message> {
  readonly #channel: string
  readonly #maxBufferedBytes: number
  readonly #counters: ChannelCounters
  readonly #log: FastifyBaseLogger
  readonly #seam: ReplaySeam
  readonly #sinks = new Set<SinkReceiver>()
  readonly #iterators = new Set<Subscription<Message>>()
  #entries: Entry[] = []
  #batch = ''
  #flushScheduled = false

  constructor (channel: string, maxBufferedBytes: number, counters: ChannelCounters, log: FastifyBaseLogger, seam: ReplaySeam) {
    this.#channel = channel
    this.#maxBufferedBytes = maxBufferedBytes
    this.#counters = counters
    this.#log = log
    this.#seam = seam
  }

  /** Live subscribers of either kind. */
  get size (): number {
    return this.#sinks.size + this.#iterators.size
  }

  /** Adds a live entry to this turn's batch; the batch is flushed when the event loop turns. */
  add (entry: Entry): void {
    this.#entries.push(entry)
    this.#batch += entry.frame
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      setImmediate(this.flush)
    }
  }

  /**
   * Hands the batch to every subscriber: those joining hold it, then the live ones get it,
   * then those settling take what they lack. Returns the batch. Bound once: the flush task is
   * the same function for every batch.
   */
  readonly flush = (): readonly Entry[] => {
    this.#flushScheduled = false
    const entries = this.#entries
    // Already flushed early, by a subscriber arriving (see ReplaySeam).
    if (entries.length === 0) return entries
    const batch = this.#batch
    this.#entries = []
    this.#batch = ''
    this.#seam.hold(entries, batch.length)
    if (this.#sinks.size > 0) this.#broadcast(entries.length, Buffer.from(batch))
    if (this.#iterators.size > 0) this.#deliver(entries)
    // After the shared paths, so that a receiver settling now does not get this batch twice.
    this.#seam.settle(entries)
    return entries
  }

  addSink (receiver: SinkReceiver): void {
    this.#sinks.add(receiver)
  }

  deleteSink (receiver: SinkReceiver): void {
    this.#sinks.delete(receiver)
  }

  addIterator (subscription: Subscription<Message>): void {
    this.#iterators.add(subscription)
  }

  deleteIterator (subscription: Subscription<Message>): void {
    this.#iterators.delete(subscription)
  }

  /** Queues one message in an iterator, counting it as sent unless the iterator is cut off. */
  push (subscription: Subscription<Message>, message: Message | undefined, size: number): void {
    if (message !== undefined && subscription.push(message, size, this.#overflow)) this.#counters.sentEvents++
  }

  /** Cuts off an iterator that fell behind while joining. */
  tooSlow (subscription: Subscription<Message>): void {
    subscription.fail(this.#overflow())
  }

  /** Ends every live subscriber: the channel closes. */
  close (): void {
    for (const receiver of this.#sinks) receiver.close()
    for (const subscription of this.#iterators) subscription.end()
  }

  /**
   * The hot path: the same bytes to every stream. A stream whose queue would pass
   * maxBufferedBytes is dropped instead: one slow client must neither hold the others back
   * nor make the server buffer without bound. An idle one always gets the batch, however big.
   */
  #broadcast (count: number, bytes: Buffer): void {
    const max = this.#maxBufferedBytes
    const size = bytes.length
    for (const receiver of this.#sinks) {
      const queued = receiver.sink.queued
      if (queued > 0 && queued + size > max) receiver.drop()
      else receiver.sink.writeBytes(bytes)
    }
    this.#counters.sentEvents += count * this.#sinks.size
  }

  /** Iterators get messages parsed once per entry, shared by all of them. */
  #deliver (entries: Entry[]): void {
    for (const entry of entries) {
      const message = decodeMessage<Message>(entry, this.#channel, this.#log)
      if (message === undefined) continue
      const size = entry.frame.length
      for (const subscription of this.#iterators) this.push(subscription, message, size)
    }
  }

  readonly #overflow = (): Error => {
    this.#counters.slowDisconnects++
    publishSlowSubscriber(this.#channel, 'iterator', this.#maxBufferedBytes)
    return new SlowSubscriberError(this.#channel, this.#maxBufferedBytes)
  }
}
