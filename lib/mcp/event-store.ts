import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import type { Bus } from '../channel/bus.js'
import { InvalidOptionError } from '../errors.js'
import { compileOptions, History, Implements } from '../options.js'

export const McpEventStoreOptionsSchema = Type.Object({
  /**
   * The bus that keeps the events: the one given to the plugin (`memoryBus()` for one process,
   * `redisBus()` so that any instance can replay them).
   */
  bus: Implements<Bus>(['publish', 'replay', 'compare'], {}, { errorMessage: 'must be a bus such as memoryBus() or redisBus()' }),
  /**
   * Messages kept per MCP stream for replay.
   * @default 1000
   */
  history: Type.Optional(History({ default: 1000 })),
  /**
   * Milliseconds a stream's messages are kept after its last message, when the bus can expire
   * (memoryBus and redisBus can).
   * @default 600000 (10 minutes)
   */
  ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1, default: 600_000, errorMessage: 'must be a positive integer of milliseconds (at most 2^31 - 1)' }))
})
/** Options of {@link mcpEventStore}. */
export type McpEventStoreOptions = Static<typeof McpEventStoreOptionsSchema>

const checkOptions = compileOptions('mcpEventStore options', McpEventStoreOptionsSchema)
const { properties: DEFAULTS } = McpEventStoreOptionsSchema

/** A JSON-RPC message as MCP sends it (the SDK's `JSONRPCMessage`). */
export type McpMessage = Record<string, unknown>

/**
 * The `EventStore` of `@modelcontextprotocol/sdk` (Streamable HTTP transport), structurally:
 * assignable to the SDK's interface without this package depending on it.
 */
export interface McpEventStore {
  /** Stores `message` on `streamId`; resolves to its event id (`<streamId>.<bus id>`). */
  storeEvent (streamId: string, message: McpMessage): Promise<string>
  /** The stream an event id belongs to; undefined for an id this store did not make. */
  getStreamIdForEventId (eventId: string): Promise<string | undefined>
  /**
   * Sends, in order, the messages of the stream of `lastEventId` stored after it; resolves to
   * that stream's id. Rejects with FST_ERR_CONDUIT_INVALID_OPTION for an id this store did not make.
   */
  replayEventsAfter (lastEventId: string, handlers: { send: (eventId: string, message: McpMessage) => Promise<void> }): Promise<string>
}

// A stream's messages are the bus channel `@mcp:<streamId>`; an event id is the stream id and
// the bus's id, joined by the last '.' (bus ids have none).
const CHANNEL_PREFIX = '@mcp:'
const SEPARATOR = '.'

/**
 * An MCP `EventStore` on a fastify-conduit bus, so that `StreamableHTTPServerTransport` of
 * `@modelcontextprotocol/sdk` resumes a client's stream after a dropped connection: the client
 * reconnects with Last-Event-ID and gets every message it missed, then the rest. With
 * `redisBus()` the messages are kept in Redis (any instance can replay them, and they survive a
 * restart of the process; the transport's sessions themselves stay in the process that made them).
 *
 * @example
 * import { mcpEventStore } from 'fastify-conduit/mcp'
 * const bus = redisBus({ url })
 * await app.register(fastifyConduit, { bus })
 * const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, eventStore: mcpEventStore({ bus }) })
 */
export function mcpEventStore (options: McpEventStoreOptions): McpEventStore {
  const { bus, history = DEFAULTS.history.default, ttl = DEFAULTS.ttl.default } = checkOptions(options)
  return {
    async storeEvent (streamId, message) {
      const channel = CHANNEL_PREFIX + streamId
      const id = await bus.publish(channel, JSON.stringify(message), history)
      await bus.expire?.(channel, ttl)
      return streamId + SEPARATOR + id
    },
    async getStreamIdForEventId (eventId) {
      return parse(eventId)?.streamId
    },
    async replayEventsAfter (lastEventId, { send }) {
      const parsed = parse(lastEventId)
      if (parsed === undefined) throw new InvalidOptionError('lastEventId', 'is not an event id of this store')
      const { streamId, id } = parsed
      const { entries } = await bus.replay(CHANNEL_PREFIX + streamId, id)
      for (const entry of entries) {
        if (bus.compare(entry.id, id) > 0) await send(streamId + SEPARATOR + entry.id, JSON.parse(entry.body) as McpMessage)
      }
      return streamId
    }
  }
}

function parse (eventId: string): { streamId: string, id: string } | undefined {
  const at = eventId.lastIndexOf(SEPARATOR)
  if (at <= 0 || at === eventId.length - 1) return undefined
  return { streamId: eventId.slice(0, at), id: eventId.slice(at + 1) }
}
