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
  readonly channel: Channel<EventSchemas | undefined>
  readonly schema: EventSchemas | undefined
  readonly history: number
  readonly maxBufferedBytes: number
}

/** The channels of one Fastify instance, by name: `app.sse.channel()` and their shutdown. */
export class ChannelRegistry {
  readonly counters: ChannelCounters = { publishedEvents: 0, sentEvents: 0, slowDisconnects: 0 }
  readonly #settings: ChannelRegistrySettings
  readonly #channels = new Map<string, Registered>()
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
    if (existing !== undefined) {
      if (existing.history === history && existing.maxBufferedBytes === maxBufferedBytes && sameSchemas(existing.schema, schema)) {
        return existing.channel
      }
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
        if (this.#channels.get(name)?.channel === channel) this.#channels.delete(name)
      }
    })
    this.#channels.set(name, { channel, schema, history, maxBufferedBytes })
    return channel
  }

  /**
   * Delivers everything acknowledged so far: what the bus holds and has not yet handed over
   * (see {@link Bus.flush}), then every channel's pending batch. The server is closing: its
   * streams end next, and an event whose `publish()` resolved must reach them first.
   */
  async flush (): Promise<void> {
    if (this.#channels.size === 0) return
    await this.#settings.bus.flush?.()
    for (const { channel } of this.#channels.values()) channel[kFlush]()
  }

  /** Ends every channel: the server is closing. */
  close (): void {
    this.#closed = true
    for (const { channel } of this.#channels.values()) channel.close()
  }
}

/**
 * Same event names, each with the same schema: the same object, or one that serializes alike
 * (a handler that writes `{ schema: { msg: Type.Object(...) } }` inline builds new objects per
 * call, and must still get its channel back).
 */
function sameSchemas (a: EventSchemas | undefined, b: EventSchemas | undefined): boolean {
  if (a === b) return true
  if (a === undefined || b === undefined) return false
  const names = Object.keys(a)
  if (names.length !== Object.keys(b).length) return false
  return names.every((name) => a[name] === b[name] || JSON.stringify(a[name]) === JSON.stringify(b[name]))
}
