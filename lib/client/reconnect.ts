/** The longest delay `setTimeout` keeps: a longer one overflows and fires at once. */
const MAX_TIMER = 2 ** 31 - 1

/**
 * The spread of the jitter around the server's `retry`: the first reconnection after a drop
 * waits between `(1 - RETRY_JITTER)` and `(1 + RETRY_JITTER)` times it, uniformly, so clients
 * dropped together (a deploy, a restart) come back over a window as wide as `retry` itself
 * instead of in the same millisecond. Their average wait stays `retry`.
 */
export const RETRY_JITTER = 0.5

/**
 * The jitter added to a `Retry-After`: the wait is between it and `1 + RETRY_AFTER_JITTER`
 * times it, uniformly. Never less: RFC 9110 §10.2.3 asks the client to wait at least that long.
 */
export const RETRY_AFTER_JITTER = 0.5

/**
 * The wait in milliseconds before reconnection `attempt` (1 for the first after a drop; the
 * count restarts whenever a connection opens).
 *
 * - Once the server has sent `retry` (HTML §9.2.6 "the event stream's reconnection time"), the
 *   first attempt waits around it: uniformly between half and one and a half times it (see
 *   {@link RETRY_JITTER}). Further attempts in a row back off from it, with jitter, up to
 *   `maxDelay` (or the server's value, when that is larger).
 * - Otherwise attempt `n` waits a random time between `minDelay` and
 *   `min(maxDelay, minDelay * 2^n)`: exponential backoff with jitter, so that many clients
 *   dropped together by a restarting server do not come back in one wave (§9.2.3: "if the
 *   previous attempt failed, then user agents might introduce an exponential backoff delay").
 *
 * `random` returns a number in [0, 1), as `Math.random` does.
 *
 * @example
 * reconnectDelay(1, 2000, 100, 30000) // between 1000 and 3000: around the server's retry
 * reconnectDelay(3, undefined, 100, 30000) // between 100 and 800
 */
export function reconnectDelay (
  attempt: number,
  serverRetry: number | undefined,
  minDelay: number,
  maxDelay: number,
  random: () => number = Math.random
): number {
  if (serverRetry !== undefined && attempt <= 1) {
    return Math.min(serverRetry * (1 - RETRY_JITTER + 2 * RETRY_JITTER * random()), MAX_TIMER)
  }
  const base = serverRetry ?? minDelay
  const exponent = serverRetry === undefined ? attempt : attempt - 1
  const ceiling = Math.min(Math.max(maxDelay, base), Math.max(base, minDelay) * 2 ** exponent)
  return Math.min(base + random() * Math.max(0, ceiling - base), MAX_TIMER)
}

/** `delay-seconds` (RFC 9110 §10.2.3): "a non-negative decimal integer". */
const DELAY_SECONDS = /^[0-9]+$/
/**
 * An HTTP-date (RFC 9110 §5.6.7) starts with the day name in all three of its forms; checked
 * first because `Date.parse` alone reads `5.5` or `-1` as dates.
 */
const HTTP_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? /

/**
 * The wait in milliseconds that a `Retry-After` header asks for, or `undefined` when there is
 * none or it is neither form of RFC 9110 §10.2.3: `delay-seconds` (`120`) or an HTTP-date
 * (`Fri, 31 Dec 1999 23:59:59 GMT`, a date in the past meaning now). The wait is bounded by
 * `maxDelay` (a server, or a proxy, cannot park the client for a year), then jittered upwards:
 * between it and one and a half times it (see {@link RETRY_AFTER_JITTER}).
 *
 * `now` is the time in milliseconds since the epoch; `random` returns a number in [0, 1).
 *
 * @example
 * retryAfterDelay('5', Date.now(), 30000) // between 5000 and 7500
 * retryAfterDelay('120', Date.now(), 30000) // between 30000 and 45000: bounded by maxDelay
 */
export function retryAfterDelay (
  header: string | null,
  now: number,
  maxDelay: number,
  random: () => number = Math.random
): number | undefined {
  if (header === null) return undefined
  const value = header.trim()
  let ms: number
  if (DELAY_SECONDS.test(value)) {
    ms = Number(value) * 1000
  } else {
    if (!HTTP_DATE.test(value)) return undefined
    // The asctime form carries no zone; HTTP-dates are all UTC (§5.6.7).
    const date = Date.parse(value.endsWith('GMT') ? value : value + ' GMT')
    if (Number.isNaN(date)) return undefined
    ms = Math.max(0, date - now)
  }
  const bounded = Math.min(ms, maxDelay)
  return Math.min(bounded * (1 + RETRY_AFTER_JITTER * random()), MAX_TIMER)
}

/** Resolves after `ms`, or as soon as `signal` aborts (the caller then checks `signal.aborted`). */
export function wait (ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve()
      return
    }
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done)
  })
}
