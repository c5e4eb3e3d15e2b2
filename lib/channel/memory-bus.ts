import { randomInt } from 'node:crypto'
import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import { ClosedError } from '../errors.js'
import { compileOptions, History, HistoryTtl } from '../options.js'
import { compareStreamIds, START, STREAM_ID } from './bus.js'
import type { Bus, BusEntry, BusListener, BusListening, BusReplay } from './bus.js'
import { noop } from './noop.js'
import { TrackedCounts } from './tracked-counts.js'

export const MemoryBusOptionsSchema = Type.Object({
  /**
   * Events kept per channel for replay, when the channel does not set its own `history`.
   * @default 1000
   */
  history: Type.Optional(History({ default: 1000 })),
  /**
   * Milliseconds a channel's history is kept after its last publish; `false` keeps it for
   * good. Per-room and per-user channels then do not accumulate: a channel quiet for this long
   * loses its history (a Last-Event-ID from before reads as a gap) and, once nobody listens
   * to it, is forgotten. Checked every `ttl` (at most every minute) while the bus is in use.
   * @default 86400000 (24 hours)
   */
  ttl: Type.Optional(HistoryTtl({ default: 86_400_000 }))
})
/** Options of {@link memoryBus}. */
export type MemoryBusOptions = Static<typeof MemoryBusOptionsSchema>

const checkMemoryBusOptions = compileOptions('memoryBus options', MemoryBusOptionsSchema)

/**
 * One channel's retained entries: a ring of `capacity` slots, sequence numbers contiguous,
 * starting after `last` (a stream made anew, or expired, goes on after every sequence number
 * the bus issued: its ids stay above any a client may hold).
 */
class MemoryStream {
  readonly listeners = new Set<BusListener>()
  /** When the last entry was appended (ms since the epoch). */
  published = 0
  #ring: BusEntry[] = []
  #capacity = 0
  /** Sequence number of the oldest retained entry. */
  #first: number
  /** Sequence number of its first entry: entries were dropped once the oldest retained is past it. */
  readonly #origin: number
  /** Sequence number the next entry gets. */
  #next: number

  constructor (last: number) {
    this.#first = this.#next = this.#origin = last + 1
  }

  get last (): number {
    return this.#next - 1
  }

  get first (): number {
    return this.#first
  }

  /** True once any of its entries was dropped (trimmed to history, or expired). */
  get dropped (): boolean {
    return this.#first > this.#origin
  }

  append (epoch: string, body: string, json: string | undefined, history: number): string {
    if (history !== this.#capacity) this.#resize(history)
    const seq = this.#next++
    const id = epoch + '-' + seq
    this.#ring[seq % this.#capacity] = { id, body, json }
    if (seq - this.#first >= this.#capacity) this.#first = seq - this.#capacity + 1
    return id
  }

  /** Retained entries with a sequence number above `after`, oldest first, at most `limit`. */
  since (after: number, limit = Infinity): BusEntry[] {
    const entries: BusEntry[] = []
    const from = Math.max(after + 1, this.#first)
    const to = Math.min(this.last, from + limit - 1)
    for (let seq = from; seq <= to; seq++) {
      entries.push(this.#ring[seq % this.#capacity])
    }
    return entries
  }

  /** Drops every entry; sequence numbers go on where they were. */
  expire (): void {
    this.#ring = []
    this.#capacity = 0
    this.#first = this.#next
  }

  // Channels of one name normally agree on their history; if two instances sharing the bus
  // disagree, the latest publisher's wins, as XADD MAXLEN does on Redis.
  #resize (capacity: number): void {
    const kept = this.since(Math.max(this.#first - 1, this.last - capacity))
    this.#ring = new Array<BusEntry>(capacity)
    this.#capacity = capacity
    this.#first = this.#next - kept.length
    for (const entry of kept) {
      const seq = Number(entry.id.slice(entry.id.indexOf('-') + 1))
      this.#ring[seq % capacity] = entry
    }
  }
}

/**
 * The in-process bus, and the default: channels live in this process's memory. Share one
 * `memoryBus()` between Fastify instances of one process and they share channels. For several
 * processes, use `redisBus` from `fastify-conduit/redis`.
 *
 * Ids are `<epoch>-<sequence>`, the epoch being 8 random digits drawn when the bus was made:
 * a Last-Event-ID from before a restart is recognised as unknown (its events are gone), never
 * mistaken for a recent one (two buses draw the same epoch once in 90 million). Short on
 * purpose: the id is on every event of every subscriber (a 13-digit millisecond epoch cost a
 * 1,000-subscriber broadcast about a fifth of its throughput).
 *
 * @example
 * import fastifyConduit, { memoryBus } from 'fastify-conduit'
 * await app.register(fastifyConduit, { bus: memoryBus({ history: 500 }) })
 */
export function memoryBus (options: MemoryBusOptions = {}): Bus {
  return new MemoryBus(options)
}

class MemoryBus implements Bus {
  readonly history: number
  readonly #ttl: number | false
  readonly #epoch = String(randomInt(10_000_000, 100_000_000))
  readonly #streams = new Map<string, MemoryStream>()
  /** Resumable streams' record states (setState), each with its deadline (ms since the epoch). */
  readonly #states = new Map<string, { state: string, deadline: number }>()
  /** Channels due to be dropped (expire), with the timer that drops them. */
  readonly #expiries = new Map<string, NodeJS.Timeout>()
  /** Presence: each channel's counters. */
  readonly #counts = new TrackedCounts()
  /** The highest sequence number issued on any channel. */
  #last = 0
  #sweeper: NodeJS.Timeout | undefined
  #users = 0
  #closed = false

  constructor (options: MemoryBusOptions) {
    const { history, ttl } = checkMemoryBusOptions(options)
    const defaults = MemoryBusOptionsSchema.properties
    this.history = history ?? defaults.history.default
    this.#ttl = ttl ?? defaults.ttl.default
  }

  async ready (): Promise<void> {
    this.#users++
    const ttl = this.#ttl
    // Unref'd: a bus never keeps the process alive.
    if (ttl !== false && this.#sweeper === undefined) this.#sweeper = setInterval(this.#sweep, Math.min(ttl, 60_000)).unref()
  }

  async publish (channel: string, body: string, history: number, json?: string): Promise<string> {
    if (this.#closed) throw new ClosedError('the bus')
    const stream = this.#stream(channel)
    const id = stream.append(this.#epoch, body, json, history)
    this.#last = Math.max(this.#last, stream.last)
    stream.published = Date.now()
    for (const listener of stream.listeners) listener(id, body, json)
    return id
  }

  listen (channel: string, listener: BusListener): BusListening {
    if (this.#closed) {
      const ready = Promise.reject(new ClosedError('the bus'))
      ready.catch(noop) // a listener that never awaits it must not crash the process
      return { ready, stop: noop }
    }
    const stream = this.#stream(channel)
    stream.listeners.add(listener)
    // Delivery is synchronous with publish: live starts now.
    return { ready: Promise.resolve(), stop: () => { stream.listeners.delete(listener) } }
  }

  async replay (channel: string, afterId: string, limit?: number): Promise<BusReplay> {
    const stream = this.#streams.get(channel)
    // START: from the first entry, complete unless some were dropped (none yet: nothing to miss).
    if (stream === undefined) return { entries: [], complete: afterId === START }
    if (afterId === START) return { entries: stream.since(0, limit), complete: !stream.dropped }
    const match = STREAM_ID.exec(afterId)
    const seq = match === null || match[1] !== this.#epoch ? NaN : Number(match[2])
    // Within history: nothing after afterId has been dropped (first - 1 is the newest entry
    // dropped, or 0), and afterId was issued (not beyond the last).
    if (seq >= stream.first - 1 && seq <= stream.last) return { entries: stream.since(seq, limit), complete: true }
    return { entries: stream.since(0, limit), complete: false }
  }

  async last (channel: string): Promise<string | undefined> {
    // Every stream has a position, an empty one too: the last sequence number issued before
    // it, which replay reads as complete (see MemoryStream). A stream forgotten and made anew
    // goes on after every number the bus issued since, so its position then reads as a gap.
    const stream = this.#stream(channel)
    // Seen empty now: kept a whole `ttl` from now (as a publish would keep it), so that only a
    // client away that long can find it made anew, a false gap when nothing was published.
    if (stream.first > stream.last) stream.published = Date.now()
    return this.#epoch + '-' + stream.last
  }

  compare (a: string, b: string): number {
    return compareStreamIds(a, b)
  }

  track (channel: string, count: () => number): () => void {
    return this.#counts.track(channel, count)
  }

  async subscribers (channel: string): Promise<number> {
    return this.#counts.sum(channel)
  }

  async setState (key: string, state: string, ttl: number, create: boolean): Promise<boolean> {
    if (this.#closed) throw new ClosedError('the bus')
    if (create && this.#liveState(key) !== undefined) return false
    this.#states.set(key, { state, deadline: Date.now() + ttl })
    return true
  }

  async getState (key: string): Promise<string | undefined> {
    return this.#liveState(key)
  }

  async expire (channel: string, ttl: number): Promise<void> {
    if (this.#closed) throw new ClosedError('the bus')
    clearTimeout(this.#expiries.get(channel))
    const timer = setTimeout(() => {
      this.#expiries.delete(channel)
      const stream = this.#streams.get(channel)
      if (stream === undefined) return
      // Its listeners (readers still attached) keep listening, to what comes next.
      if (stream.listeners.size === 0) this.#streams.delete(channel)
      else stream.expire()
    }, ttl)
    // A pending expiry never holds the process open.
    timer.unref()
    this.#expiries.set(channel, timer)
  }

  async close (): Promise<void> {
    if (--this.#users > 0) return
    this.#closed = true
    clearInterval(this.#sweeper)
    for (const stream of this.#streams.values()) stream.listeners.clear()
    for (const timer of this.#expiries.values()) clearTimeout(timer)
    this.#expiries.clear()
  }

  /** The state at `key`, forgotten once its deadline passed. */
  #liveState (key: string): string | undefined {
    const entry = this.#states.get(key)
    if (entry === undefined) return undefined
    if (entry.deadline > Date.now()) return entry.state
    this.#states.delete(key)
    return undefined
  }

  /** Expires the history of channels quiet for `ttl`, and forgets those nobody listens to. */
  readonly #sweep = (): void => {
    const before = Date.now() - (this.#ttl as number)
    for (const [channel, stream] of this.#streams) {
      if (stream.published > before) continue
      if (stream.listeners.size === 0) this.#streams.delete(channel)
      else stream.expire()
    }
  }

  #stream (channel: string): MemoryStream {
    let stream = this.#streams.get(channel)
    if (stream === undefined) {
      stream = new MemoryStream(this.#last)
      this.#streams.set(channel, stream)
    }
    return stream
  }
}
