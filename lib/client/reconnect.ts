/** The longest delay `setTimeout` keeps: a longer one overflows and fires at once. */
const MAX_TIMER = 2 ** 31 - 1

/**
 * The wait in milliseconds before reconnection `attempt` (1 for the first after a drop; the
 * count restarts whenever a connection opens).
 *
 * - Once the server has sent `retry`, the first attempt waits exactly that long, as EventSource
 *   does (HTML §9.2.6 "the event stream's reconnection time"). Further attempts in a row back
 *   off from it, with jitter, up to `maxDelay` (or the server's value, when that is larger).
 * - Otherwise attempt `n` waits a random time between `minDelay` and
 *   `min(maxDelay, minDelay * 2^n)`: exponential backoff with jitter, so that many clients
 *   dropped together by a restarting server do not come back in one wave (§9.2.3: "if the
 *   previous attempt failed, then user agents might introduce an exponential backoff delay").
 *
 * @example
 * reconnectDelay(1, 2000, 100, 30000) // 2000: the server's retry
 * reconnectDelay(3, undefined, 100, 30000) // between 100 and 800
 */
export function reconnectDelay (
  attempt: number,
  serverRetry: number | undefined,
  minDelay: number,
  maxDelay: number,
  random: () => number = Math.random
): number {
  if (serverRetry !== undefined && attempt <= 1) return Math.min(serverRetry, MAX_TIMER)
  const base = serverRetry ?? minDelay
  const exponent = serverRetry === undefined ? attempt : attempt - 1
  const ceiling = Math.min(Math.max(maxDelay, base), Math.max(base, minDelay) * 2 ** exponent)
  return Math.min(base + random() * Math.max(0, ceiling - base), MAX_TIMER)
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
