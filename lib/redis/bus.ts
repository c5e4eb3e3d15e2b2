import type { Redis } from 'ioredis'
import { compareStreamIds, STREAM_ID } from '../channel/bus.js'
import type { Bus, BusEntry, BusListener, BusListening, BusLogger, BusReplay } from '../channel/bus.js'
import { BusError, ClosedError, InvalidOptionError } from '../errors.js'
import { loadIoredis } from './client.js'

/** Options of {@link redisBus}. Give `url` or `client`, not both. */
export interface RedisBusOptions {
  /**
   * Where Redis listens. The bus opens two connections: one for commands, one for the
   * blocking reads of every channel this instance listens to.
   * @default 'redis://127.0.0.1:6379' (when no `client` is given)
   */
  url?: string
  /**
   * An ioredis client to publish and replay with (its options are copied for the reading
   * connection). The bus never closes it: its owner does.
   * @default none: the bus connects to `url`
   */
  client?: Redis
  /**
   * Prepended to channel names to make stream keys, so several applications can share a Redis.
   * @default 'conduit:'
   */
  prefix?: string
  /**
   * Events kept per channel (XADD MAXLEN ~), when the channel does not set its own `history`.
   * Redis trims by whole internal nodes, so a little more may be kept.
   * @default 1000
   */
  history?: number
}

/** One channel (stream key) this instance listens to. */
interface Stream {
  readonly listeners: Set<BusListener>
  /** The last id delivered (or the stream's last id when listening began); unset until then. */
  cursor: string | undefined
  ready: Promise<void>
}

// The stream entry field holding the frame.
const FRAME = 'frame'
// A blocking read returns after this long even when nothing came, so a channel whose CLIENT
// UNBLOCK was refused (ACLs) or raced the read still joins within this delay.
const BLOCK_MS = 1000
// Entries read per stream per round: bounds one reply's size; the next read continues.
const READ_COUNT = 1000
// After an unexpected read error (a key changed type under us), wait before reading again
// rather than spinning; connection errors do not reach this (the read waits for reconnection).
const ERROR_PAUSE_MS = 1000

/**
 * A bus on Redis Streams, for several Fastify instances (processes, machines) sharing
 * channels: publish on one, subscribers on all receive, and a client reconnecting to any of
 * them with Last-Event-ID resumes without loss (within the history) or duplicates.
 *
 * - A channel is a stream `<prefix><name>`; publish is one `XADD … MAXLEN ~ <history>`, whose
 *   id (`<ms>-<seq>`) is the event's id.
 * - Each instance reads all its channels with one blocking `XREAD` on one dedicated
 *   connection, whatever the number of channels and subscribers.
 * - Replay is `XRANGE` from the Last-Event-ID.
 * - When the connection drops or Redis restarts, the bus reconnects and reads on from the last
 *   id it saw on each channel, so connected subscribers lose nothing published meanwhile.
 *
 * Needs Redis >= 5 (7 for exact gap detection after trimming) and the `ioredis` package.
 *
 * @example
 * import fastifyConduit from 'fastify-conduit'
 * import { redisBus } from 'fastify-conduit/redis'
 * await app.register(fastifyConduit, { bus: redisBus({ url: process.env.REDIS_URL }) })
 */
export function redisBus (options: RedisBusOptions = {}): Bus {
  return new RedisBus(options)
}

class RedisBus implements Bus {
  readonly history: number
  /** Where Redis is, as logs and errors may show it (no password). */
  readonly #url: string
  readonly #connectUrl: string
  readonly #client: Redis | undefined
  readonly #prefix: string
  readonly #streams = new Map<string, Stream>()
  #started: Promise<Redis> | undefined
  #reader: Redis | undefined
  #readerId: number | undefined
  #blocked = false
  #wake: (() => void) | undefined
  #pause: NodeJS.Timeout | undefined
  #log: BusLogger | undefined
  #users = 0
  #closed = false

  constructor (options: RedisBusOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('redisBus options', 'must be an object')
    const { url, client, prefix = 'conduit:', history = 1000 } = options
    if (url !== undefined && client !== undefined) throw new InvalidOptionError('url', 'cannot be given with client')
    if (url !== undefined && (typeof url !== 'string' || url === '')) throw new InvalidOptionError('url', 'must be a redis:// URL')
    if (client !== undefined && (typeof client !== 'object' || client === null || typeof client.duplicate !== 'function')) {
      throw new InvalidOptionError('client', 'must be an ioredis client')
    }
    if (typeof prefix !== 'string') throw new InvalidOptionError('prefix', 'must be a string')
    if (!Number.isSafeInteger(history) || history < 1) throw new InvalidOptionError('history', 'must be a positive integer')
    this.#client = client
    this.#connectUrl = url ?? 'redis://127.0.0.1:6379'
    this.#url = client === undefined ? redact(this.#connectUrl) : `redis://${client.options.host}:${client.options.port}`
    this.#prefix = prefix
    this.history = history
  }

  async ready (log?: BusLogger): Promise<void> {
    this.#users++
    if (log !== undefined) this.#log = log
    await this.#connect()
  }

  async publish (channel: string, body: string, history: number): Promise<string> {
    const command = await this.#command()
    try {
      return await command.xadd(this.#prefix + channel, 'MAXLEN', '~', history, '*', FRAME, body) as string
    } catch (err) {
      throw new BusError(`cannot publish to "${channel}" on Redis at ${this.#url}: ${(err as Error).message}`, { cause: err })
    }
  }

  listen (channel: string, listener: BusListener): BusListening {
    const key = this.#prefix + channel
    let stream = this.#streams.get(key)
    if (stream === undefined) {
      const created: Stream = { listeners: new Set(), cursor: undefined, ready: Promise.resolve() }
      created.ready = this.#position(key, created)
      created.ready.catch(noop)
      this.#streams.set(key, created)
      stream = created
    }
    stream.listeners.add(listener)
    const listening = stream
    return {
      ready: listening.ready,
      stop: () => {
        listening.listeners.delete(listener)
        if (listening.listeners.size === 0 && this.#streams.get(key) === listening) this.#streams.delete(key)
      }
    }
  }

  async replay (channel: string, afterId: string): Promise<BusReplay> {
    const command = await this.#command()
    const key = this.#prefix + channel
    try {
      // A well-formed id: read from it inclusive. If it is still there, what follows is exactly
      // what the client missed. If it is not, it is complete only when it is the newest entry
      // trimmed away (Redis 7 reports it), otherwise older events are gone or the id is unknown.
      if (STREAM_ID.test(afterId)) {
        const from = await command.xrange(key, afterId, '+')
        if (from.length > 0 && from[0][0] === afterId) return { entries: entriesOf(from.slice(1)), complete: true }
        if (await maxDeletedId(command, key) === afterId) return { entries: entriesOf(from), complete: true }
      }
      return { entries: entriesOf(await command.xrange(key, '-', '+')), complete: false }
    } catch (err) {
      throw new BusError(`cannot replay "${channel}" from Redis at ${this.#url}: ${(err as Error).message}`, { cause: err })
    }
  }

  compare (a: string, b: string): number {
    return compareStreamIds(a, b)
  }

  async close (): Promise<void> {
    if (--this.#users > 0 || this.#closed) return
    this.#closed = true
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
    // The pending XREAD rejects (or, during an outage, is dropped), and the loop sees the bus
    // closed; nothing waits on it.
    this.#reader?.disconnect()
    if (this.#client !== undefined) return
    if (command.status === 'ready') await command.quit()
    else command.disconnect()
  }

  /** The command connection once connected; ClosedError after close. */
  async #command (): Promise<Redis> {
    if (this.#closed) throw new ClosedError('the bus')
    return await this.#connect()
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
    const readerHealth = this.#watch(reader, 'reader')
    const commandHealth = own ? this.#watch(command, 'command') : undefined
    reader.on('ready', () => {
      // CLIENT UNBLOCK needs this connection's id, which changes with every reconnection.
      reader.client('ID').then((id) => { this.#readerId = id }, noop)
    })
    reader.on('close', () => { this.#readerId = undefined })
    try {
      if (own) await command.connect()
      else await command.ping()
      await reader.connect()
    } catch (err) {
      reader.disconnect()
      if (own) command.disconnect()
      // ioredis rejects with "Connection is closed"; the 'error' event said why.
      const reason = commandHealth?.error ?? readerHealth.error ?? err as Error
      throw new BusError(`cannot reach Redis at ${this.#url}: ${reason.message}`, { cause: reason })
    }
    this.#reader = reader
    this.#read(reader).catch((err: unknown) => {
      /* c8 ignore next -- listeners do not throw; a guard so that a bug is logged, not lost */
      this.#log?.error({ err }, 'fastify-conduit: the Redis read loop stopped')
    })
    return command
  }

  /**
   * Logs an outage once when it starts and once when it ends (ioredis retries every few
   * seconds), never with the URL's password. Returns the last connection error seen.
   */
  #watch (client: Redis, role: string): { error: Error | undefined } {
    const health = { error: undefined as Error | undefined, state: 'connecting' as 'connecting' | 'up' | 'down' }
    // Without an 'error' listener ioredis prints every failed reconnection to the console.
    client.on('error', (err: Error) => { health.error = err })
    client.on('reconnecting', () => {
      if (health.state !== 'up' || this.#closed) return
      health.state = 'down'
      this.#log?.warn({ redis: this.#url, connection: role }, 'fastify-conduit: lost the Redis connection; reconnecting')
    })
    client.on('ready', () => {
      if (health.state === 'down') this.#log?.info({ redis: this.#url, connection: role }, 'fastify-conduit: reconnected to Redis')
      health.state = 'up'
      health.error = undefined
    })
    return health
  }

  /** Fixes where live delivery starts for a new channel: after its last entry now. */
  async #position (key: string, stream: Stream): Promise<void> {
    const command = await this.#command()
    let last: Array<[string, string[]]>
    try {
      last = await command.xrevrange(key, '+', '-', 'COUNT', 1)
    } catch (err) {
      throw new BusError(`cannot listen to "${key}" on Redis at ${this.#url}: ${(err as Error).message}`, { cause: err })
    }
    // Trimming never removes the newest entry, so the last entry is the last id issued; a
    // missing stream reads from the start, which is everything published from now on.
    stream.cursor = last.length > 0 ? last[0][0] : '0-0'
    if (this.#streams.get(key) !== stream) return
    if (this.#wake !== undefined) this.#wakeReader()
    else if (this.#blocked && this.#readerId !== undefined) {
      // The reader is blocked on the other channels: unblock it so it reads this one too.
      command.client('UNBLOCK', this.#readerId).catch(noop)
    }
  }

  /** The read loop: one XREAD for every channel this instance listens to, until closed. */
  async #read (reader: Redis): Promise<void> {
    while (!this.#closed) {
      const keys: string[] = []
      const ids: string[] = []
      for (const [key, stream] of this.#streams) {
        if (stream.cursor === undefined) continue
        keys.push(key)
        ids.push(stream.cursor)
      }
      if (keys.length === 0) {
        await new Promise<void>((resolve) => { this.#wake = resolve })
        continue
      }
      let reply: Array<[string, Array<[string, string[]]>]> | null
      this.#blocked = true
      try {
        reply = await reader.xread('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', ...keys, ...ids)
      } catch (err) {
        this.#blocked = false
        if (this.#closed) return
        this.#log?.error({ err, redis: this.#url }, 'fastify-conduit: reading channels from Redis failed; retrying')
        await new Promise<void>((resolve) => {
          this.#wake = resolve
          this.#pause = setTimeout(() => this.#wakeReader(), ERROR_PAUSE_MS)
        })
        continue
      }
      this.#blocked = false
      if (reply !== null && !this.#closed) this.#dispatch(reply)
    }
  }

  #dispatch (reply: Array<[string, Array<[string, string[]]>]>): void {
    for (const [key, entries] of reply) {
      const stream = this.#streams.get(key)
      if (stream?.cursor === undefined) continue
      for (const [id, fields] of entries) {
        // A channel re-listened while this read was in flight starts at a newer cursor.
        if (compareStreamIds(id, stream.cursor) <= 0) continue
        stream.cursor = id
        const body = frameOf(fields)
        if (body === undefined) continue
        for (const listener of stream.listeners) listener(id, body)
      }
    }
  }

  #wakeReader (): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }
}

/** The frame field of a stream entry's `[field, value, …]`; undefined if something else wrote it. */
function frameOf (fields: string[]): string | undefined {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === FRAME) return fields[i + 1]
  return undefined
}

function entriesOf (raw: Array<[string, string[]]>): BusEntry[] {
  const entries: BusEntry[] = []
  for (const [id, fields] of raw) {
    const body = frameOf(fields)
    if (body !== undefined) entries.push({ id, body })
  }
  return entries
}

/** The newest id trimmed from the stream (Redis >= 7); undefined without it or without the stream. */
async function maxDeletedId (command: Redis, key: string): Promise<string | undefined> {
  let info: unknown[]
  try {
    info = await command.xinfo('STREAM', key) as unknown[]
  } catch {
    return undefined // no such stream: the id is unknown
  }
  const at = info.indexOf('max-deleted-entry-id')
  /* c8 ignore next -- Redis < 7 does not report it; the tests run on Redis 7 */
  if (at === -1) return undefined
  return info[at + 1] as string
}

/** The URL as it may appear in logs and errors: any password replaced. */
function redact (url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')
}

function noop (): void {}
