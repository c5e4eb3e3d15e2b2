import { randomInt } from 'node:crypto'
import type { Redis } from 'ioredis'
import { compareStreamIds, EPOCH_NAME, START, STREAM_ID } from '../channel/bus.js'
import type { Bus, BusEntry, BusListener, BusListening, BusLogger, BusReplay } from '../channel/bus.js'
import { noop } from '../channel/noop.js'
import { publishBusError } from '../diagnostics.js'
import { BusError, ClosedError } from '../errors.js'
import { loadIoredis } from './client.js'
import { resolveRedisBusOptions } from './options.js'
import { Presence } from './presence.js'
import type { RedisBusOptions } from './options.js'
import { Publisher } from './publish.js'

/** One channel (stream key) this instance listens to. */
interface Stream {
  readonly listeners: Set<BusListener>
  /** The listeners' onGap callbacks. */
  readonly gaps: Set<() => void>
  /** The reader may have fallen behind trimming (reconnected, failed, or read a full COUNT): check before delivering. */
  check: boolean
  /** Where reading goes on from: the last id delivered, or the stream's last id when listening began. */
  cursor: string
  ready: Promise<void>
}

// The fields of a stream entry: `frame`, the frame without its id line (BusEntry.body), and,
// for string data only, `json`, the data as JSON (BusEntry.json). Entries written before
// `json` existed have `frame` alone; their data lines were JSON for every kind of data, so
// they read back as before. Older versions of this package reading the new entries stream
// them as they should, but their subscribe() reads string data as JSON: see the README.
const FRAME = 'frame'
const JSON_FIELD = 'json'
// A blocking read returns after this long even when nothing came, so a channel whose CLIENT
// UNBLOCK was refused (ACLs) or raced the read still joins within this delay.
const BLOCK_MS = 1000
// Entries read per stream per round: bounds one reply's size; the next read continues.
const READ_COUNT = 1000
// After a failed round of the read loop (a key changed type under us, a listener threw),
// wait before reading again rather than spinning: 100 ms, doubling per consecutive failure up
// to 5 s. Connection errors do not reach this (the read waits for reconnection).
const RETRY_MIN_MS = 100
const RETRY_MAX_MS = 5000

/**
 * Where a channel with no entry stands (see {@link RedisStreamsBus.last}): `0-<T·2^23 + E>`, T
 * the Redis time (ms) at which the channel was seen empty, E this Redis's incarnation: the
 * number at `<prefix>@epoch`, set once (SET NX), never expiring, so lost only with the whole
 * dataset (a restart without persistence, a flush). No entry has a 0 milliseconds part (XADD's
 * ids are Redis's clock), so such a position is told from an entry's id, and sorts before
 * every entry published after it, as START does. 43 bits of T last until the year 2248, and
 * the whole stays within the 20 digits of STREAM_ID.
 */
const EMPTY_AT = /^0-([1-9]\d{0,19})$/
const EPOCH_BITS = 23n
const EPOCH_MASK = (1n << EPOCH_BITS) - 1n
// One step, so that nothing comes between seeing the channel empty and reading the epoch and
// the clock: an entry XREVRANGE does not see was published at T or later, in that incarnation
// or a later one. (SET before TIME: Redis 5 and 6 refuse a write after a non-deterministic
// command in a script.)
const LAST_SCRIPT = `local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then return last[1][1] end
redis.call('SET', KEYS[2], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[2])
local now = redis.call('TIME')
return {epoch, now[1], now[2]}`

/** What {@link RedisBus.stats} reports; counters since the bus was made. */
export interface RedisBusStats {
  /** Rounds of the shared read loop that failed (each logged, then retried with backoff). */
  readFailures: number
  /**
   * Times a channel's live entries were found lost before this instance read them (trimmed by
   * MAXLEN while the reader was behind); each ended the channel's live subscribers.
   */
  liveGaps: number
}

/** The bus `redisBus()` returns: a {@link Bus}, plus its own counters. */
export interface RedisBus extends Bus {
  /** The read loop's counters, for metrics and health checks. */
  stats (): RedisBusStats
}

/**
 * A bus on Redis Streams, for several Fastify instances (processes, machines) sharing
 * channels: publish on one, subscribers on all receive, and a client reconnecting to any of
 * them with Last-Event-ID resumes without loss (within the history) or duplicates.
 *
 * - A channel is a stream `<prefix><name>`; publish is one `XADD … MAXLEN ~ <history>`, whose
 *   id (`<ms>-<seq>`) is the event's id, run by a script that makes it idempotent and bounded
 *   by `publishTimeout` (see publish.ts). An entry's fields are `frame` (the event as written
 *   to clients, without its id) and, for string data, `json` (the string as JSON, so that
 *   subscribers get it back exactly).
 * - Each instance reads all its channels with one blocking `XREAD` on one dedicated
 *   connection, whatever the number of channels and subscribers.
 * - Replay is `XRANGE … COUNT` from the Last-Event-ID, page by page.
 * - Every publish renews the key's expiry (`PEXPIRE <ttl>`): quiet channels leave no keys.
 * - When the connection drops or Redis restarts, the bus reconnects and reads on from the last
 *   id it saw on each channel, so connected subscribers lose nothing published meanwhile.
 *
 * Needs Redis >= 5 and the `ioredis` package (an optional peer dependency).
 *
 * @example
 * import fastifyConduit from 'fastify-conduit'
 * import { redisBus } from 'fastify-conduit/redis'
 * await app.register(fastifyConduit, { bus: redisBus({ url: process.env.REDIS_URL }) })
 */
export function redisBus (options: RedisBusOptions = {}): RedisBus {
  return new RedisStreamsBus(options)
}

class RedisStreamsBus implements RedisBus {
  readonly history: number
  /** Where Redis is, as logs and errors may show it (no password). */
  readonly #url: string
  readonly #connectUrl: string
  readonly #client: Redis | undefined
  readonly #prefix: string
  readonly #ttl: number | false
  readonly #publisher: Publisher
  /** Re-measures Redis's clock after a reconnection (see Publisher.syncClock). */
  #syncClock: () => void = noop
  /** Every channel listened to, by stream key. */
  readonly #streams = new Map<string, Stream>()
  /** Those of them positioned, which the read loop reads. */
  readonly #reading = new Map<string, Stream>()
  #started: Promise<Redis> | undefined
  #reader: Redis | undefined
  /** The command connection, once connected. */
  #command: Redis | undefined
  #readerId: number | undefined
  #blocked = false
  #wake: (() => void) | undefined
  #pause: NodeJS.Timeout | undefined
  #log: BusLogger | undefined
  /** The last connection error ioredis reported: why a connection attempt failed. */
  #lastError: Error | undefined
  #users = 0
  #closed = false
  #readFailures = 0
  #liveGaps = 0
  /** flush() calls waiting for the read loop to reach an id on a channel. */
  #flushes: Array<{ stream: Stream, id: string, resolve: () => void }> = []
  // Rejects when the bus closes: commands queued during an outage would otherwise wait for a
  // reconnection that close() cancels, and their callers forever.
  readonly #closing: Promise<never>
  #rejectClosing: (err: Error) => void = noop
  readonly #presence: Presence

  constructor (options: RedisBusOptions) {
    this.#closing = new Promise<never>((resolve, reject) => { this.#rejectClosing = reject })
    this.#closing.catch(noop)
    const { url, client, prefix, history, ttl, presenceInterval, publishTimeout } = resolveRedisBusOptions(options)
    this.#presence = new Presence(prefix, presenceInterval, (what, command) => this.#run(what, command), (err) => {
      this.#log?.warn({ err, redis: this.#url }, 'fastify-conduit: could not publish subscriber counts to Redis; retrying at the next interval')
    })
    this.#ttl = ttl
    this.#client = client
    this.#connectUrl = url
    this.#url = client === undefined ? redact(this.#connectUrl) : `redis://${client.options.host}:${client.options.port}`
    this.#prefix = prefix
    this.history = history
    this.#publisher = new Publisher(prefix, publishTimeout, this.#url, () => this.#command?.status === 'ready' ? undefined : this.#lastError)
  }

  async ready (log?: BusLogger): Promise<void> {
    this.#users++
    if (log !== undefined) this.#log = log
    await this.#connect()
  }

  publish (channel: string, body: string, history: number, json?: string): Promise<string> {
    // One script does the XADD and the PEXPIRE, once per publish and within publishTimeout,
    // whatever the outage (see publish.ts).
    return this.#run(`cannot publish to "${channel}"`, (command) =>
      this.#publisher.publish(command, channel, this.#prefix + channel, body, history, this.#ttl, json))
  }

  listen (channel: string, listener: BusListener, onGap?: () => void): BusListening {
    const key = this.#prefix + channel
    let stream = this.#streams.get(key)
    if (stream === undefined) {
      const created: Stream = { listeners: new Set(), gaps: new Set(), check: false, cursor: START, ready: Promise.resolve() }
      created.ready = this.#position(key, created)
      created.ready.catch(noop)
      this.#streams.set(key, created)
      stream = created
    }
    stream.listeners.add(listener)
    if (onGap !== undefined) stream.gaps.add(onGap)
    const listening = stream
    return {
      ready: listening.ready,
      stop: () => {
        listening.listeners.delete(listener)
        if (onGap !== undefined) listening.gaps.delete(onGap)
        if (listening.listeners.size === 0 && this.#streams.get(key) === listening) {
          this.#streams.delete(key)
          this.#reading.delete(key)
        }
      }
    }
  }

  replay (channel: string, afterId: string, limit?: number): Promise<BusReplay> {
    const key = this.#prefix + channel
    // XRANGE with COUNT: a page of the history, never all of it in one reply (channels page
    // through a long replay, each page after the last id of the one before).
    return this.#run(`cannot replay "${channel}"`, async (command) => {
      const range = (start: string, count: number | undefined): Promise<Array<[string, string[]]>> =>
        count === undefined ? command.xrange(key, start, '+') : command.xrange(key, start, '+', 'COUNT', count)
      // Read from the id inclusive: if it is still there, trimming (which removes the oldest
      // first) has removed nothing after it, and what follows is exactly what the client
      // missed. If it is not, the events after it may be gone (or the id is unknown, or from
      // before Redis lost its data): replay what is retained from the oldest and report the
      // gap. (Redis does not record the newest id MAXLEN trimmed, so an id exactly at the trim
      // boundary is reported as a gap too: a false alarm, never a silent loss.)
      if (afterId === START) return await this.#replayFromStart(command, key, limit)
      const emptyAt = EMPTY_AT.exec(afterId)
      if (emptyAt !== null) return await this.#replayFromEmpty(command, key, BigInt(emptyAt[1]), limit)
      if (STREAM_ID.test(afterId)) {
        const from = await range(afterId, limit === undefined ? undefined : limit + 1)
        if (from.length > 0 && from[0][0] === afterId) return { entries: replayEntries(from.slice(1)), complete: true }
      }
      return { entries: replayEntries(await range('-', limit)), complete: false }
    })
  }

  /**
   * Replay from {@link START}, before every id: what is retained, from the oldest, complete
   * only if the stream never lost an entry (XINFO STREAM: `entries-added` equals `length`; no
   * key: nothing was published). No entry is ever at `0-0`, so trimming cannot be read off
   * the range as for an id; XINFO says it, in the same round trip (sent right after XRANGE,
   * which Redis runs first: a trim between the two is a false alarm, never a silent loss).
   * Redis < 7 does not count added entries: a gap is reported whenever the key exists.
   */
  async #replayFromStart (command: Redis, key: string, limit: number | undefined): Promise<BusReplay> {
    const [raw, info] = await oldestAndInfo(command, key, limit)
    return { entries: replayEntries(raw), complete: info === undefined || !wasTrimmed(info) }
  }

  /**
   * Replay from where a channel with no entry stood (see {@link EMPTY_AT}): what is retained,
   * from the oldest, complete only if nothing published since can have been dropped:
   * - Redis is the same incarnation (`<prefix>@epoch` unchanged), or else it lost its whole
   *   dataset meanwhile, this channel's history with it;
   * - the stream never lost an entry (as from START);
   * - no earlier stream of the key can have expired since. A stream expires `ttl` after its
   *   last publish, so one begun at T or later is gone at T + ttl at the earliest: the key's
   *   first entry (the first of its stream) before then, or no key while Redis's clock is
   *   still before then, proves none did. From then on, a channel whose first event came that
   *   late reads as a gap: a false alarm, never a silent loss.
   * Sent together, in this order: an expiry or a restart among them reads as a gap.
   */
  async #replayFromEmpty (command: Redis, key: string, position: bigint, limit: number | undefined): Promise<BusReplay> {
    // Sent in this order: XRANGE and XINFO (called first), then TIME and GET.
    const [[raw, info], now, epoch] = await Promise.all([
      oldestAndInfo(command, key, limit),
      command.time(),
      command.get(this.#prefix + EPOCH_NAME)
    ])
    const entries = replayEntries(raw)
    const until = Number(position >> EPOCH_BITS) + (this.#ttl === false ? Infinity : this.#ttl)
    const complete = epoch === String(position & EPOCH_MASK) && (info === undefined
      ? redisMs(now) < until
      : !wasTrimmed(info) && (entries.length === 0 || idMs(entries[0].id) < until))
    return { entries, complete }
  }

  last (channel: string): Promise<string | undefined> {
    // Trimming never removes the newest entry: it is the last id issued. A channel with none
    // has a position too (see EMPTY_AT), so that its history dropped whole and begun anew
    // while a client was away is told from a history that began after it left.
    return this.#run(`cannot read the last id of "${channel}"`, async (command) => {
      const last = await command.eval(LAST_SCRIPT, 2, this.#prefix + channel, this.#prefix + EPOCH_NAME,
        randomInt(1, Number(EPOCH_MASK) + 1)) as string | [string, string, string]
      if (typeof last === 'string') return last
      const [epoch, seconds, micros] = last
      return '0-' + ((BigInt(redisMs([seconds, micros])) << EPOCH_BITS) | BigInt(epoch)).toString()
    })
  }

  compare (a: string, b: string): number {
    return compareStreamIds(a, b)
  }

  setState (key: string, state: string, ttl: number, create: boolean): Promise<boolean> {
    const stateKey = this.#prefix + key
    return this.#run(`cannot set the state of "${key}"`, async (command) => {
      const set = create ? await command.set(stateKey, state, 'PX', ttl, 'NX') : await command.set(stateKey, state, 'PX', ttl)
      return set === 'OK'
    })
  }

  getState (key: string): Promise<string | undefined> {
    return this.#run(`cannot read the state of "${key}"`, async (command) => (await command.get(this.#prefix + key)) ?? undefined)
  }

  async expire (channel: string, ttl: number): Promise<void> {
    await this.#run(`cannot expire "${channel}"`, (command) => command.pexpire(this.#prefix + channel, ttl))
  }

  track (channel: string, count: () => number): () => void {
    return this.#presence.track(channel, count)
  }

  subscribers (channel: string): Promise<number> {
    return this.#presence.subscribers(channel)
  }

  stats (): RedisBusStats {
    return { readFailures: this.#readFailures, liveGaps: this.#liveGaps }
  }

  /**
   * Resolves once the read loop has delivered, on every channel it reads, the entries that
   * were in Redis when this was called (published by any instance), or when the bus closes.
   * The plugin bounds the wait by `closeGracePeriod`.
   */
  async flush (): Promise<void> {
    const keys = [...this.#reading.keys()]
    const streams = [...this.#reading.values()]
    // The commands go out together (ioredis writes each without waiting for the last reply).
    const ends = await this.#run('cannot flush channels', (command) =>
      Promise.all(keys.map((key) => command.xrevrange(key, '+', '-', 'COUNT', 1))))
    const waits: Array<Promise<void>> = []
    for (let i = 0; i < streams.length; i++) {
      const stream = streams[i]
      const last = ends[i][0]?.[0]
      if (last === undefined || compareStreamIds(stream.cursor, last) >= 0) continue
      waits.push(new Promise((resolve) => { this.#flushes.push({ stream, id: last, resolve }) }))
    }
    await Promise.race([Promise.all(waits), this.#closing.catch(noop)])
  }

  async close (): Promise<void> {
    if (--this.#users > 0 || this.#closed) return
    // Before the connection goes: other instances stop counting this one's subscribers now.
    await this.#presence.close(this.#command?.status === 'ready')
    this.#closed = true
    this.#rejectClosing(new ClosedError('the bus'))
    clearTimeout(this.#pause)
    this.#pause = undefined
    this.#wakeReader()
    const started = this.#started
    if (started === undefined) return
    let command: Redis
    try {
      command = await started
    } catch {
      return // it never connected, and cleaned up after itself
    }
    // Disconnect rather than QUIT: QUIT waits for a reply that, if Redis just went away, comes
    // only after ioredis gives up reconnecting. Nothing is left to wait for: every pending
    // call was rejected above, and the read loop sees the bus closed.
    this.#reader?.disconnect()
    if (this.#client === undefined) command.disconnect()
    else command.off('ready', this.#syncClock)
  }

  /**
   * Runs one command on the command connection (connecting first if need be). Redis errors
   * become BusError naming what failed and where; close() rejects it with ClosedError.
   */
  async #run<T> (what: string, command: (client: Redis) => Promise<T>): Promise<T> {
    if (this.#closed) throw new ClosedError('the bus')
    const client = await this.#connect()
    try {
      return await Promise.race([command(client), this.#closing])
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'FST_ERR_CONDUIT_CLOSED' || code === 'FST_ERR_CONDUIT_PUBLISH_TIMEOUT') throw err
      throw new BusError(`${what} on Redis at ${this.#url}: ${(err as Error).message}`, { cause: err })
    }
  }

  #connect (): Promise<Redis> {
    this.#started ??= this.#start()
    return this.#started
  }

  async #start (): Promise<Redis> {
    const RedisClient = await loadIoredis()
    const own = this.#client === undefined
    const command = this.#client ?? new RedisClient(this.#connectUrl, { lazyConnect: true })
    // The reading connection waits out any outage (no retry limit) and resends its pending
    // XREAD after reconnecting: the ids in it are where each channel stopped.
    const reader = command.duplicate({ lazyConnect: true, maxRetriesPerRequest: null, autoResendUnfulfilledCommands: true })
    this.#watch(reader, 'reader')
    if (own) this.#watch(command, 'command')
    reader.on('ready', () => {
      // CLIENT UNBLOCK needs this connection's id, which changes with every reconnection.
      reader.client('ID').then((id) => { this.#readerId = id }, noop)
    })
    reader.on('close', () => {
      this.#readerId = undefined
      this.#checkAll()
    })
    let clustered = false
    try {
      if (own) await command.connect()
      else await command.ping()
      // A cluster node answers as one Redis, then fails the first XREAD over keys of several
      // slots (CROSSSLOT) or of another node (MOVED): refused at startup instead. (A server
      // that refuses INFO is taken for a plain one.)
      clustered = /^cluster_enabled:1/m.test(String(await command.info('cluster').catch(noop)))
      if (clustered) throw new Error('it runs in cluster mode, which redisBus does not support: give it one Redis server')
      await this.#publisher.syncClock(command)
      await reader.connect()
    } catch (err) {
      reader.disconnect()
      if (own) command.disconnect()
      // ioredis rejects with "Connection is closed"; its 'error' event said why.
      const reason = clustered ? err as Error : this.#lastError ?? err as Error
      throw new BusError(`cannot ${clustered ? 'use' : 'reach'} Redis at ${this.#url}: ${reason.message}`, { cause: reason })
    }
    this.#syncClock = () => { this.#publisher.syncClock(command).catch(noop) }
    command.on('ready', this.#syncClock)
    this.#reader = reader
    this.#command = command
    this.#read(reader).catch((err: unknown) => {
      /* c8 ignore next -- listeners do not throw; a guard so that a bug is logged, not lost */
      this.#log?.error({ err }, 'fastify-conduit: the Redis read loop stopped')
    })
    return command
  }

  /**
   * Logs an outage once when it starts and once when it ends (ioredis retries every few
   * seconds), never with the URL's password.
   */
  #watch (client: Redis, role: string): void {
    let state: 'connecting' | 'up' | 'down' = 'connecting'
    // Without an 'error' listener ioredis prints every failed reconnection to the console.
    client.on('error', (err: Error) => { this.#lastError = err })
    client.on('reconnecting', () => {
      if (state !== 'up') return
      state = 'down'
      this.#log?.warn({ redis: this.#url, connection: role }, 'fastify-conduit: lost the Redis connection; reconnecting')
    })
    client.on('ready', () => {
      if (state === 'down') this.#log?.info({ redis: this.#url, connection: role }, 'fastify-conduit: reconnected to Redis')
      state = 'up'
    })
  }

  /** Fixes where live delivery starts for a new channel: after its last entry now. */
  async #position (key: string, stream: Stream): Promise<void> {
    const last = await this.#run(`cannot listen to "${key.slice(this.#prefix.length)}"`, (command) =>
      command.xrevrange(key, '+', '-', 'COUNT', 1))
    if (this.#streams.get(key) !== stream) return // nobody listens any more
    // Trimming never removes the newest entry, so the last entry is the last id issued; a
    // missing stream reads from the start, which is everything published from now on.
    stream.cursor = last.length > 0 ? last[0][0] : START
    this.#reading.set(key, stream)
    if (this.#wake !== undefined) this.#wakeReader()
    else if (this.#blocked && this.#readerId !== undefined) {
      // The reader is blocked on the other channels: unblock it so it reads this one too.
      const reader = this.#readerId
      this.#run('cannot unblock the reader', (command) => command.client('UNBLOCK', reader)).catch(noop)
    }
  }

  /**
   * The read loop: one XREAD for every channel this instance listens to, until closed. Any
   * failure of a round is logged, counted (see stats()) and retried after a backoff: the loop
   * never ends before the bus closes, or every channel of this instance would go silent.
   */
  async #read (reader: Redis): Promise<void> {
    let failures = 0
    while (!this.#closed) {
      try {
        await this.#readRound(reader)
        failures = 0
      } catch (err) {
        this.#blocked = false
        if (this.#closed) return
        publishBusError('read', undefined, err)
        this.#readFailures++
        this.#checkAll()
        const retryIn = Math.min(RETRY_MIN_MS * 2 ** failures++, RETRY_MAX_MS)
        this.#log?.error({ err, redis: this.#url, failures, retryIn }, 'fastify-conduit: reading channels from Redis failed; retrying')
        await new Promise<void>((resolve) => {
          this.#wake = resolve
          this.#pause = setTimeout(() => this.#wakeReader(), retryIn)
        })
      }
    }
  }

  /** One XREAD and its delivery, or a wait for a first channel to read. */
  async #readRound (reader: Redis): Promise<void> {
    // What this read is for: a reply for a channel since dropped or listened to anew (with
    // a new position) no longer belongs to anyone and is ignored.
    const reading = new Map(this.#reading)
    if (reading.size === 0) {
      await new Promise<void>((resolve) => { this.#wake = resolve })
      return
    }
    const streams = [...reading.values()]
    this.#blocked = true
    const reply: Array<[string, Array<[string, string[]]>]> | null =
      await reader.xread('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', ...reading.keys(), ...streams.map((stream) => stream.cursor))
    this.#blocked = false
    if (reply !== null && !this.#closed) {
      await this.#checkGaps(reply, reading)
      this.#dispatch(reply, reading)
    }
    if (this.#flushes.length > 0) this.#settleFlushes()
  }

  /** The reader may have missed entries on every channel: check each before its next delivery. */
  #checkAll (): void {
    for (const stream of this.#reading.values()) stream.check = true
  }

  /**
   * Before delivering a reply, finds the channels whose entries after the cursor were trimmed
   * by MAXLEN before this reader got them: those whose last delivered entry (the cursor) is no
   * longer in Redis, since trimming removes the oldest first. Their live listeners are told
   * (onGap), then get what follows as usual. Checked only where the reader may have fallen
   * behind (see Stream.check), so a healthy read costs nothing more. A stream never trimmed
   * (a Redis restarted without persistence comes back empty: the cursor is gone, yet nothing
   * after it was lost) is no gap; Redis < 7 does not say, and any missing cursor counts. Like replay, an entry
   * trimmed exactly at the cursor reports a gap that is not one: a false alarm, never a
   * silent loss. A channel that had no entry when listening began (cursor 0-0) is not checked.
   */
  async #checkGaps (reply: Array<[string, Array<[string, string[]]>]>, reading: Map<string, Stream>): Promise<void> {
    const checks: Array<[string, Stream]> = []
    for (const [key, entries] of reply) {
      const stream = reading.get(key) as Stream
      if (stream.check && stream.cursor !== START) checks.push([key, stream])
      // A full reply: more is waiting, and the reader is behind by at least this much.
      stream.check = entries.length === READ_COUNT
    }
    if (checks.length === 0) return
    const found = await this.#run('cannot check channels for a gap', (command) =>
      Promise.all(checks.map(([key, stream]) => Promise.all([command.xrange(key, stream.cursor, stream.cursor), command.xinfo('STREAM', key)]))))
    for (let i = 0; i < checks.length; i++) {
      const [key, stream] = checks[i]
      const [kept, info] = found[i]
      if (kept.length > 0 || !wasTrimmed(info as unknown[]) || this.#reading.get(key) !== stream) continue
      this.#liveGaps++
      this.#log?.warn({ redis: this.#url, channel: key.slice(this.#prefix.length), after: stream.cursor },
        'fastify-conduit: live events were trimmed (MAXLEN) before this instance read them; the channel\'s live subscribers end and resume through replay')
      for (const onGap of stream.gaps) onGap()
    }
  }

  /** Resolves the flush() waits whose channel was read up to their id. */
  #settleFlushes (): void {
    this.#flushes = this.#flushes.filter((flush) => {
      if (compareStreamIds(flush.stream.cursor, flush.id) < 0) return true
      flush.resolve()
      return false
    })
  }

  #dispatch (reply: Array<[string, Array<[string, string[]]>]>, reading: Map<string, Stream>): void {
    for (const [key, entries] of reply) {
      const stream = reading.get(key) as Stream
      if (this.#reading.get(key) !== stream) continue
      for (const [id, fields] of entries) {
        stream.cursor = id
        const entry = entryOf(id, fields)
        if (entry === undefined) continue
        for (const listener of stream.listeners) listener(id, entry.body, entry.json)
      }
    }
  }

  #wakeReader (): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }
}

/**
 * The key's oldest entries (all, or `limit`) and its XINFO STREAM (undefined: no key), sent
 * together on `command`, XRANGE first: what a replay from the start of a stream reads.
 */
function oldestAndInfo (command: Redis, key: string, limit: number | undefined): Promise<[Array<[string, string[]]>, unknown[] | undefined]> {
  return Promise.all([
    limit === undefined ? command.xrange(key, '-', '+') : command.xrange(key, '-', '+', 'COUNT', limit),
    (command.xinfo('STREAM', key) as Promise<unknown[]>).catch((err: Error) => {
      if (/no such key/i.test(err.message)) return undefined
      throw err
    })
  ])
}

/**
 * From XINFO STREAM: true when entries were ever removed from the stream (added > length:
 * trimmed by MAXLEN, or XDEL), and always on Redis < 7, which does not say.
 */
function wasTrimmed (info: unknown[]): boolean {
  const added = info.indexOf('entries-added')
  /* c8 ignore next -- Redis < 7 has no entries-added (the tests run Redis 7) */
  if (added === -1) return true
  return Number(info[added + 1]) > Number(info[info.indexOf('length') + 1])
}

/** A stream entry's `[field, value, …]` as a bus entry; undefined without `frame` (something else wrote it). */
function entryOf (id: string, fields: string[]): BusEntry | undefined {
  let body: string | undefined
  let json: string | undefined
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === FRAME) body = fields[i + 1]
    else if (fields[i] === JSON_FIELD) json = fields[i + 1]
  }
  return body === undefined ? undefined : { id, body, json }
}

/**
 * A page of replay: one entry per stream entry, so that a page of `limit` is `limit` long; an
 * entry without `frame` (something else wrote it) has an empty body, which the channel skips
 * and logs.
 */
function replayEntries (raw: Array<[string, string[]]>): BusEntry[] {
  return raw.map(([id, fields]) => entryOf(id, fields) ?? { id, body: '' })
}

/** Redis's TIME reply in milliseconds. */
function redisMs ([seconds, micros]: Array<string | number>): number {
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
}

/** The milliseconds part of a stream id. */
function idMs (id: string): number {
  return Number(id.slice(0, id.indexOf('-')))
}

/** The URL as it may appear in logs and errors: any password replaced. */
function redact (url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')
}
