import type { FastifyBaseLogger } from 'fastify'
import { publishSlowSubscriber } from '../diagnostics.js'
import { SlowSubscriberError } from '../errors.js'
import { decodeMessage } from './decode-entry.js'
import type { Entry } from './decode-entry.js'
import type { ReplaySeam } from './replay-seam.js'
import type { Subscriber } from './subscriber.js'

/** Counters shared by the channels of one Fastify instance (see `app.sse.stats()`). */
export interface ChannelCounters {
  publishedEvents: number
  sentEvents: number
  slowDisconnects: number
}

/**
 * A batch of several entries this long (UTF-16 units) is handed over at once instead of at the
 * end of the turn. A publisher whose loop never lets the event loop turn (`await publish()` on
 * memoryBus resolves without I/O) would otherwise grow one batch without bound, and nobody would
 * receive anything until it stopped (found by the 1,000-subscriber proof: "Invalid string length" past 512 MB).
 * 256 Ki: what a turn usually publishes still goes out as one write per subscriber (at 64 Ki,
 * a burst of 1,000 small events was cut in two, and a 1,000-subscriber broadcast ran at 0.50×
 * of hand-tuned node:http instead of 0.73×), and a subscriber's queue of `maxBufferedBytes`
 * (4 MiB by default) holds many such batches.
 */
const MAX_BATCH = 256 * 1024

/** The Buffer of one selection of a batch's entries, shared by the streams that selected alike. */
interface Selection {
  readonly mask: Buffer
  readonly bytes: Buffer
}

/**
 * The live path of one channel on this instance. What the bus delivers within one event-loop
 * turn becomes one batch; the batch goes, as one Buffer, to every live stream, and, parsed once
 * per entry, to every live iterator. Streams with a `where()` filter get the entries it selects,
 * as slices of that same Buffer: their filters run on the messages parsed once, and streams
 * that select the same entries share one Buffer. A subscriber that falls more than
 * `maxBufferedBytes` behind is cut off rather than holding the others back or making the
 * server buffer without bound.
 */
export class FanOut {
  readonly #channel: string
  readonly #maxBufferedBytes: number
  readonly #counters: ChannelCounters
  readonly #log: FastifyBaseLogger
  readonly #seam: ReplaySeam
  /** Streams without a filter: the hot path. */
  readonly #sinks = new Set<Subscriber>()
  /** Streams with a filter. */
  readonly #selective = new Set<Subscriber>()
  readonly #iterators = new Set<Subscriber>()
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

  /** Live subscribers of every kind. */
  get size (): number {
    return this.#sinks.size + this.#selective.size + this.#iterators.size
  }

  /**
   * Adds a live entry to this turn's batch; the batch is flushed when the event loop turns, or
   * at once when it reaches {@link MAX_BATCH}.
   */
  add (entry: Entry): void {
    this.#entries.push(entry)
    this.#batch += entry.frame
    // One entry, however big, waits for the turn as before: only accumulation is bounded here.
    if (this.#batch.length >= MAX_BATCH && this.#entries.length > 1) this.flush()
    else if (!this.#flushScheduled) {
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
    let bytes: Buffer | undefined
    if (this.#sinks.size > 0) {
      bytes = Buffer.from(batch)
      this.#broadcast(entries.length, bytes)
    }
    if (this.#selective.size > 0 || this.#iterators.size > 0) {
      // Parsed once per entry, whatever the number of filters and iterators.
      const messages = entries.map(this.#decode)
      if (this.#selective.size > 0) this.#select(entries, messages, bytes ?? Buffer.from(batch))
      if (this.#iterators.size > 0) this.#deliver(entries, messages)
    }
    // After the shared paths, so that a receiver settling now does not get this batch twice.
    this.#seam.settle(entries)
    return entries
  }

  /** Puts a subscriber on the live path of its kind. */
  subscribe (subscriber: Subscriber): void {
    if (subscriber.sink === undefined) this.#iterators.add(subscriber)
    else if (subscriber.filter === undefined) this.#sinks.add(subscriber)
    else this.#selective.add(subscriber)
  }

  /** Takes a subscriber off the live path; true if it was on it. */
  unsubscribe (subscriber: Subscriber): boolean {
    return this.#sinks.delete(subscriber) || this.#selective.delete(subscriber) || this.#iterators.delete(subscriber)
  }

  /** Ends every live subscriber: the channel closes. */
  close (): void {
    for (const subscribers of [this.#sinks, this.#selective, this.#iterators]) {
      for (const subscriber of subscribers) subscriber.close()
    }
  }

  /** The error an iterator too far behind gets, counted. */
  readonly overflow = (): Error => {
    this.#counters.slowDisconnects++
    publishSlowSubscriber(this.#channel, 'iterator', this.#maxBufferedBytes)
    return new SlowSubscriberError(this.#channel, this.#maxBufferedBytes)
  }

  /**
   * The hot path: the same bytes to every stream. A stream whose queue would pass
   * maxBufferedBytes is dropped instead: one slow client must neither hold the others back
   * nor make the server buffer without bound. An idle one always gets the batch, however big.
   */
  #broadcast (count: number, bytes: Buffer): void {
    for (const subscriber of this.#sinks) this.#send(subscriber, bytes)
    this.#counters.sentEvents += count * this.#sinks.size
  }

  #send (subscriber: Subscriber, bytes: Buffer): void {
    const sink = subscriber.sink as NonNullable<Subscriber['sink']>
    const queued = sink.queued
    if (queued > 0 && queued + bytes.length > this.#maxBufferedBytes) subscriber.drop()
    else sink.writeBytes(bytes)
  }

  /**
   * Filtered streams: each filter runs once per entry on the shared parsed message, which
   * gives the stream's selection (a mask over the batch). The entries a selection keeps are
   * copied once out of the batch's Buffer, and that Buffer is written to every stream with the
   * same selection: a filter that passes half the events to a thousand streams costs one copy,
   * not a thousand. A stream that selects everything gets the batch's own Buffer.
   */
  #select (entries: readonly Entry[], messages: readonly unknown[], bytes: Buffer): void {
    const count = entries.length
    const mask = Buffer.alloc(count)
    const selections = new Map<number, Selection[]>()
    let ends: number[] | undefined
    // Streams with one filter (the usual case) select alike batch after batch: the last
    // selection is tried first, one memcmp, before hashing the mask.
    let last: Selection | undefined
    for (const subscriber of this.#selective) {
      const selected = subscriber.selectBatch(messages, mask)
      if (subscriber.left || selected === 0) continue
      if (selected === count) {
        this.#send(subscriber, bytes)
      } else {
        let selection = last !== undefined && last.mask.equals(mask) ? last : undefined
        if (selection === undefined) {
          let hash = 0
          for (let i = 0; i < count; i++) hash = (Math.imul(hash, 31) + mask[i] + 1) | 0
          let alike = selections.get(hash)
          if (alike === undefined) {
            alike = []
            selections.set(hash, alike)
          }
          selection = alike.find((other) => other.mask.equals(mask))
          if (selection === undefined) {
            ends ??= byteEnds(entries)
            selection = { mask: Buffer.from(mask), bytes: slice(bytes, mask, ends) }
            alike.push(selection)
          }
          last = selection
        }
        this.#send(subscriber, selection.bytes)
      }
      this.#counters.sentEvents += selected
    }
  }

  /** Iterators get messages parsed once per entry, shared by all of them (and by filters). */
  #deliver (entries: readonly Entry[], messages: readonly unknown[]): void {
    for (let i = 0; i < entries.length; i++) {
      const message = messages[i]
      if (message === undefined) continue
      const frame = entries[i].frame
      for (const subscriber of this.#iterators) {
        if (subscriber.selects(message)) subscriber.push(message, frame)
      }
    }
  }

  readonly #decode = (entry: Entry): unknown => decodeMessage(entry, this.#channel, this.#log)
}

/** Where each entry's frame ends in the batch's Buffer, in bytes. */
function byteEnds (entries: readonly Entry[]): number[] {
  const ends: number[] = []
  let end = 0
  for (const entry of entries) {
    end += Buffer.byteLength(entry.frame)
    ends.push(end)
  }
  return ends
}

/** The entries `mask` keeps, copied out of `bytes` run by run into one Buffer. */
function slice (bytes: Buffer, mask: Buffer, ends: readonly number[]): Buffer {
  const runs: Buffer[] = []
  let length = 0
  let i = 0
  while (i < mask.length) {
    if (mask[i] === 0) {
      i++
      continue
    }
    const start = i === 0 ? 0 : ends[i - 1]
    while (i < mask.length && mask[i] === 1) i++
    const run = bytes.subarray(start, ends[i - 1])
    runs.push(run)
    length += run.length
  }
  return Buffer.concat(runs, length)
}
