/** The longest delay `setTimeout` keeps: a longer one overflows and fires at once. */
const MAX_TIMER = 2 ** 31 - 1

/**
 * Detects a dead connection: calls `onIdle` once when the client has waited `timeout`
 * milliseconds for a byte (the response head or a body chunk) without one arriving. Only time
 * spent waiting counts: while the consumer of the events is busy, nothing is read and the
 * server's bytes wait in buffers, which is no sign of a dead connection.
 *
 * One timer per connection, re-armed only when it fires: a read costs a `Date.now()`, not a
 * `setTimeout`/`clearTimeout` pair per chunk.
 */
export class IdleTimer {
  readonly #timeout: number
  readonly #onIdle: () => void
  #timer: ReturnType<typeof setTimeout> | undefined
  /** When the pending wait began; meaningful while `#waiting`. */
  #since = 0
  #waiting = false
  #fired = false
  /** The timeout was reached once: the next check, after one turn of I/O, decides. */
  #confirming = false

  constructor (timeout: number, onIdle: () => void) {
    this.#timeout = timeout
    this.#onIdle = onIdle
  }

  /** Whether `onIdle` was called. */
  get fired (): boolean {
    return this.#fired
  }

  /** A wait for bytes begins (a request, or a read of the body). */
  waiting (): void {
    this.#since = Date.now()
    this.#waiting = true
    if (this.#timer === undefined && !this.#fired) this.#arm(this.#timeout)
  }

  /** Bytes arrived: the wait is over. */
  arrived (): void {
    this.#waiting = false
  }

  /** The connection is over: no more checks. */
  stop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #arm (ms: number): void {
    this.#timer = setTimeout(this.#check, Math.min(ms, MAX_TIMER))
  }

  readonly #check = (): void => {
    this.#timer = undefined
    const confirming = this.#confirming
    this.#confirming = false
    // Not waiting: the consumer holds the events; the next wait arms the timer again.
    if (!this.#waiting) return
    const idle = Date.now() - this.#since
    if (idle < this.#timeout) {
      this.#arm(this.#timeout - idle)
      return
    }
    // Timers run before I/O is read: after the process stalled (a long GC pause, a starved
    // CPU, a suspended laptop) longer than the timeout, bytes that arrived meanwhile wait
    // unread in the socket. One more turn lets them be read before the connection is judged.
    if (!confirming) {
      this.#confirming = true
      this.#arm(0)
      return
    }
    this.#fired = true
    this.#onIdle()
  }
}
