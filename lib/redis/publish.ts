import { createHash, randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { noop } from '../channel/noop.js'
import { PublishTimeoutError } from '../errors.js'

/**
 * Bounded, idempotent publishing on Redis: every `publish()` of redisBus is one EVALSHA of the
 * script below, which Redis runs atomically.
 *
 * - **Idempotent.** Each publish has a token of its own (this bus's random tag and a counter).
 *   The script stores the entry and, with it, the key `<prefix>@publish:<token>` holding its
 *   id; run again with the same token (ioredis re-sending a command whose reply a dropped
 *   connection lost, or this module retrying after the client gave up), it returns that id
 *   and adds nothing. Token keys live only until the deadline, after which the script refuses
 *   anyway: at most one key per publish of the last `publishTimeout` ms.
 * - **Bounded.** The script gets the publish's deadline on Redis's clock (ours plus the offset
 *   measured with TIME at every connection) and stores nothing once it is past, however late a
 *   queued or re-sent copy arrives. Our deadline is `publishTimeout` after the call; Redis's
 *   is `margin` earlier, so that an event stored in time has its reply back before we give up,
 *   unless the reply itself takes longer than the margin (see the README).
 */
// The fields are redisBus's `frame` and `json` (see bus.ts). ARGV: deadline (ms on Redis's
// clock), MAXLEN, key expiry in ms ('0': none), frame[, json].
export const PUBLISH_SCRIPT = `local done = redis.call('GET', KEYS[2])
if done then return done end
local now = redis.call('TIME')
local left = tonumber(ARGV[1]) - (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
if left <= 0 then return false end
local id
if #ARGV == 5 then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'frame', ARGV[4], 'json', ARGV[5])
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'frame', ARGV[4])
end
redis.call('SET', KEYS[2], id, 'PX', left)
if ARGV[3] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return id`
const PUBLISH_SHA = createHash('sha1').update(PUBLISH_SCRIPT).digest('hex')

// Retries after the client gave up on a command (or refused it: no offline queue) wait 20 ms,
// doubling to 1 s, until the bound: an outage is not hammered with commands.
const RETRY_MIN_MS = 20
const RETRY_MAX_MS = 1000
// Errors Redis answers while it cannot serve yet; the command may be retried as it is.
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN|READONLY) /

/** One publish in flight: what its retries need, and how it ended. */
interface Pending {
  readonly channel: string
  readonly args: Array<string | number>
  /** When publish() rejects, on performance.now()'s clock (which never steps back). */
  readonly expiresAt: number
  settled: boolean
  /** The last error met, given as the timeout's cause. */
  last: unknown
  readonly resolve: (id: string) => void
  readonly reject: (err: unknown) => void
  /** The publish made after this one, while this one is queued. */
  next: Pending | undefined
}

/** The publishes of one redisBus: tokens, deadlines, retries (see PUBLISH_SCRIPT). */
export class Publisher {
  readonly #timeout: number
  readonly #margin: number
  readonly #url: string
  /** The connection's error while it is down (undefined while it is up): a timeout's cause when no command failed. */
  readonly #connectionError: () => unknown
  /** `<prefix>@publish:<this bus's random tag>:`, then a counter in base 36. */
  readonly #tokens: string
  #count = 0
  /** Redis's clock minus ours, in ms, as TIME measured it at the last (re)connection. */
  #offset = 0
  // Publishes in call order, a list from #oldest to #newest: with one timeout for all, also in
  // order of their bound, so one timer (for the oldest) serves them all, instead of one timer
  // per publish. Settled ones leave it once those before them have.
  #oldest: Pending | undefined
  #newest: Pending | undefined
  #timer: NodeJS.Timeout | undefined

  constructor (prefix: string, timeout: number, url: string, connectionError: () => unknown) {
    this.#timeout = timeout
    this.#connectionError = connectionError
    // 10% of the bound, at most 100 ms: the time a reply has to come back once Redis stored.
    this.#margin = Math.min(100, Math.floor(timeout / 10))
    this.#url = url
    this.#tokens = `${prefix}@publish:${randomBytes(9).toString('base64url')}:`
  }

  /** Measures Redis's clock against ours: on connecting, and after every reconnection. */
  async syncClock (client: Redis): Promise<void> {
    const before = Date.now()
    const [seconds, micros] = await client.time()
    const after = Date.now()
    this.#offset = Math.round(Number(seconds) * 1000 + Number(micros) / 1000 - (before + after) / 2)
  }

  /**
   * Stores `body` (and `json`) in the stream `key` once, within `publishTimeout` ms; resolves
   * to its id. Rejects with PublishTimeoutError past the bound, or with the Redis error that
   * retrying cannot cure (the caller wraps it).
   */
  publish (client: Redis, channel: string, key: string, body: string, history: number, ttl: number | false, json: string | undefined): Promise<string> {
    const deadline = Date.now() + this.#offset + this.#timeout - this.#margin
    const args = [key, this.#tokens + (this.#count++).toString(36), deadline, history, ttl === false ? 0 : ttl, body]
    if (json !== undefined) args.push(json)
    return new Promise((resolve, reject) => {
      const pending: Pending = { channel, args, expiresAt: performance.now() + this.#timeout, settled: false, last: undefined, resolve, reject, next: undefined }
      if (this.#newest === undefined) this.#oldest = pending
      else this.#newest.next = pending
      this.#newest = pending
      // The bus's close() settles the callers; the timer must not hold the process meanwhile.
      this.#timer ??= setTimeout(this.#expire, this.#timeout).unref()
      this.#attempt(client, pending).catch(noop)
    })
  }

  async #attempt (client: Redis, pending: Pending): Promise<void> {
    for (let failures = 0; ; failures++) {
      let id: string | null
      try {
        id = await evaluate(client, pending.args)
      } catch (err) {
        if (!retryable(err)) return this.#settle(pending, undefined, err)
        pending.last = err
        await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_MIN_MS * 2 ** failures, RETRY_MAX_MS)).unref())
        // The bound passed meanwhile: the publish was rejected, this loop only has to stop.
        if (pending.settled) return
        continue
      }
      // Null: Redis found the deadline past, and stored nothing.
      return id === null ? this.#settle(pending, undefined, this.#timedOut(pending)) : this.#settle(pending, id)
    }
  }

  /** Resolves (with `id`) or rejects (with `err`) a publish once, and forgets the oldest ones settled. */
  #settle (pending: Pending, id: string | undefined, err?: unknown): void {
    if (pending.settled) return
    pending.settled = true
    if (id === undefined) pending.reject(err)
    else pending.resolve(id)
    while (this.#oldest?.settled === true) this.#oldest = this.#oldest.next
    if (this.#oldest === undefined) this.#newest = undefined
  }

  /** The timer: rejects the publishes past their bound, then waits for the oldest left. */
  readonly #expire = (): void => {
    this.#timer = undefined
    const now = performance.now()
    for (let oldest = this.#oldest; oldest !== undefined; oldest = this.#oldest) {
      if (oldest.expiresAt > now) {
        this.#timer = setTimeout(this.#expire, oldest.expiresAt - now).unref()
        return
      }
      this.#settle(oldest, undefined, this.#timedOut(oldest))
    }
  }

  #timedOut (pending: Pending): Error {
    // A command queued by the client while it reconnects never fails: the cause is then why the
    // connection is down (refused, reset…).
    return new PublishTimeoutError(pending.channel, this.#timeout, this.#url, { cause: pending.last ?? this.#connectionError() })
  }
}

/** EVALSHA, and EVAL when Redis does not have the script (first use, or restarted since). */
async function evaluate (client: Redis, args: Array<string | number>): Promise<string | null> {
  try {
    return await client.evalsha(PUBLISH_SHA, 2, ...args) as string | null
  } catch (err) {
    if (!(err as Error).message.startsWith('NOSCRIPT')) throw err
    return await client.eval(PUBLISH_SCRIPT, 2, ...args) as string | null
  }
}

/**
 * True for what a retry may cure: the connection (closed, not writable, ioredis out of
 * reconnection attempts) or a Redis not ready yet. A command error (a key of another type)
 * would fail again.
 */
function retryable (err: unknown): boolean {
  return (err as Error).name !== 'ReplyError' || TRANSIENT_REPLY.test((err as Error).message)
}
