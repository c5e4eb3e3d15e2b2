/** A stream that can be kept alive by a {@link HeartbeatTicker}. */
export interface Beating {
  /** Called once per interval; the stream writes a comment frame if it has been idle. */
  beat (): void
}

/**
 * One timer per interval value for all streams, instead of one per stream: 10,000 idle
 * streams cost one `setInterval`, and a write costs only a boolean (see EventStream).
 * A stream is beaten when it has written nothing for a whole tick, so the idle time before a
 * heartbeat is between one and two intervals, never less than one.
 */
export class HeartbeatTicker {
  readonly #streams = new Set<Beating>()
  readonly #interval: number
  #timer: NodeJS.Timeout | undefined

  constructor (interval: number) {
    this.#interval = interval
  }

  add (stream: Beating): void {
    this.#streams.add(stream)
    if (this.#timer === undefined) {
      this.#timer = setInterval(beatAll, this.#interval, this.#streams)
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
}

function beatAll (streams: Set<Beating>): void {
  for (const stream of streams) stream.beat()
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
