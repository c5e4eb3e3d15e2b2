/** A stream that can be kept alive by a {@link HeartbeatTicker}. */
export interface Beating {
  /** Called on every tick; the stream writes a comment frame once it has been idle long enough. */
  beat (tick: number): void
}

/**
 * Ticks per heartbeat interval. A stream records the tick count when it writes and is beaten
 * once more than this many ticks have passed, so it has been idle for at least one interval
 * and at most 1 + 1/TICKS_PER_INTERVAL intervals (a whole-interval ticker would allow two).
 */
export const TICKS_PER_INTERVAL = 4

/**
 * One timer per interval value for all streams, instead of one per stream: 10,000 idle
 * streams cost one `setInterval`, and a write costs reading one counter (see ServerEventStream).
 */
export class HeartbeatTicker {
  readonly #streams = new Set<Beating>()
  readonly #period: number
  #timer: NodeJS.Timeout | undefined
  #tick = 0

  /** `interval`: milliseconds of idleness before a heartbeat. */
  constructor (interval: number) {
    this.#period = Math.max(1, Math.round(interval / TICKS_PER_INTERVAL))
  }

  /** Ticks since this ticker was made; a stream stores it when it writes. */
  get tick (): number {
    return this.#tick
  }

  add (stream: Beating): void {
    this.#streams.add(stream)
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#beatAll(), this.#period)
      // Heartbeats alone must not keep a process alive.
      this.#timer.unref()
    }
  }

  delete (stream: Beating): void {
    this.#streams.delete(stream)
    if (this.#streams.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  #beatAll (): void {
    const tick = ++this.#tick
    for (const stream of this.#streams) stream.beat(tick)
  }
}

/** The tickers of one Fastify instance, one per distinct interval. */
export class Heartbeats {
  readonly #tickers = new Map<number, HeartbeatTicker>()

  ticker (interval: number): HeartbeatTicker {
    let ticker = this.#tickers.get(interval)
    if (ticker === undefined) {
      ticker = new HeartbeatTicker(interval)
      this.#tickers.set(interval, ticker)
    }
    return ticker
  }
}
