import type { FastifyBaseLogger } from 'fastify'
import { ClosedError, InvalidChannelError } from '../errors.js'
import { compileOptions } from '../options.js'
import type { EventFormatter, EventSchemas } from '../schema/compile.js'
import type { Bus } from './bus.js'
import { Channel, kFlush } from './channel.js'
import type { ChannelCounters } from './channel.js'
import { ChannelOptionsSchema } from './types.js'
import type { ChannelOptions } from './types.js'

const checkChannelOptions = compileOptions('channel options', ChannelOptionsSchema)

/** What one Fastify instance's channels share. */
export interface ChannelRegistrySettings {
  bus: Bus
  /** The plugin's `maxBufferedBytes`, for channels that do not set their own. */
  maxBufferedBytes: number
  log: FastifyBaseLogger
  /** Compiles a schema once, however many channels (or routes) use the same object. */
  compile: (schemas: EventSchemas) => EventFormatter
}

interface Registered {
  /**
   * Held weakly: a channel that nothing else references (no subscriber, no publish under way,
   * not kept by the application: a per-room channel made in a handler) has nothing to end,
   * and is forgotten. The same name then makes a new one, with the same history on the bus.
   */
  readonly ref: WeakRef<Channel<EventSchemas | undefined>>
  readonly schema: EventSchemas | undefined
  readonly history: number
  readonly maxBufferedBytes: number
}

/** The channels of one Fastify instance, by name: `app.sse.channel()` and their shutdown. */
export class ChannelRegistry {
  readonly counters: ChannelCounters = { publishedEvents: 0, sentEvents: 0, slowDisconnects: 0 }
  readonly #settings: ChannelRegistrySettings
  readonly #channels = new Map<string, Registered>()
  // A forgotten channel's name leaves the map once its channel is collected (unless the name
  // was given to a new channel meanwhile).
  readonly #forget = new FinalizationRegistry<string>((name) => {
    /* c8 ignore next -- that the name went to a new channel before this ran cannot be staged */
    if (this.#channels.get(name)?.ref.deref() === undefined) this.#channels.delete(name)
  })

  #closed = false

  constructor (settings: ChannelRegistrySettings) {
    this.#settings = settings
  }

  /**
   * The channel `name`, created on first use. Asking again with the same options returns the
   * same channel, so a handler may call this per request (per room, per user); other options
   * for an existing name are an error, since one name must mean one history and one schema.
   */
  channel (name: unknown, options: ChannelOptions = {}): Channel<EventSchemas | undefined> {
    if (this.#closed) throw new ClosedError('fastify-conduit')
    if (typeof name !== 'string' || name === '') throw new InvalidChannelError('the name must be a non-empty string')
    const settings = this.#settings
    const { history = settings.bus.history, maxBufferedBytes = settings.maxBufferedBytes } = checkChannelOptions(options)
    const schema = options.schema
    const existing = this.#channels.get(name)
    const alive = existing?.ref.deref()
    if (alive !== undefined) {
      const { history: kept, maxBufferedBytes: keptBytes, schema: keptSchema } = existing as Registered
      if (kept === history && keptBytes === maxBufferedBytes && sameSchemas(keptSchema, schema)) return alive
      throw new InvalidChannelError(`"${name}" already exists with other options`)
    }
    const channel = new Channel<EventSchemas | undefined>({
      name,
      bus: settings.bus,
      format: schema === undefined ? undefined : settings.compile(schema),
      history,
      maxBufferedBytes,
      counters: this.counters,
      log: settings.log,
      onClose: () => {
        // A channel closes once, while it is the one registered under its name.
        this.#forget.unregister(channel)
        this.#channels.delete(name)
      }
    })
    this.#channels.set(name, { ref: new WeakRef(channel), schema, history, maxBufferedBytes })
    this.#forget.register(channel, name, channel)
    return channel
  }

  /**
   * Delivers everything acknowledged so far: what the bus holds and has not yet handed over
   * (see {@link Bus.flush}), then every channel's pending batch. The server is closing: its
   * streams end next, and an event whose `publish()` resolved must reach them first.
   */
  async flush (): Promise<void> {
    // Records' channels (resumable streams) are not registered here but listen on the bus too:
    // the bus is flushed whatever this registry holds.
    await this.#settings.bus.flush?.()
    for (const { ref } of this.#channels.values()) ref.deref()?.[kFlush]()
  }

  /** Ends every channel: the server is closing. */
  close (): void {
    this.#closed = true
    for (const { ref } of this.#channels.values()) ref.deref()?.close()
  }
}

/**
 * Same event names, each with the same schema: the same object, or one equal to it (a handler
 * that writes `{ schema: { msg: Type.Object(...) } }` inline builds new objects per call, and
 * must still get its channel back). Compared in place, stopping at the first difference:
 * nothing is serialized, however often a handler asks.
 */
function sameSchemas (a: EventSchemas | undefined, b: EventSchemas | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  return equalValues(a, b)
}

/**
 * Deep equality of JSON-like values (schemas): own enumerable string keys, as JSON sees them
 * (TypeBox's symbol-keyed `Kind` marks follow from its keywords).
 */
function equalValues (a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  for (const key of keys) {
    if (!Object.hasOwn(b, key) || !equalValues((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])) return false
  }
  return true
}
