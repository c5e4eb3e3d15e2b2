import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import { History, MaxBufferedBytes } from '../options.js'
import type { EventSchemas } from '../schema/compile.js'
import type { SchemaMessage } from '../schema/types.js'

export const ChannelOptionsSchema = Type.Object({
  /**
   * Events kept for replay to clients reconnecting with Last-Event-ID.
   * @default the bus's `history` (1000)
   */
  history: Type.Optional(History()),
  /**
   * Bytes a live subscriber may have waiting (unsent) before it is disconnected as too slow.
   * The client reconnects with Last-Event-ID and loses nothing within `history`. A replay is
   * paced by the subscriber's reading instead (an iterator's queue waits at this bound).
   * @default the plugin's `maxBufferedBytes` (4 MiB)
   */
  maxBufferedBytes: Type.Optional(MaxBufferedBytes())
})

/**
 * Options of `app.sse.channel(name, options)`. `schema` is checked when it is compiled (as a
 * route's is), the others by {@link ChannelOptionsSchema}.
 */
export interface ChannelOptions<Events extends EventSchemas | undefined = EventSchemas | undefined>
  extends Static<typeof ChannelOptionsSchema> {
  /**
   * Event name -> TypeBox schema of that event's `data`, as in a route's `schema.sse`. A
   * publish with an undeclared name or a payload the schema rejects fails with a coded error
   * and sends nothing.
   * @default none: any event name; string data is written verbatim (as `reply.sse` writes it),
   * anything else as JSON
   */
  schema?: Events
}

/** Options of `channel.subscribe()`. */
export interface SubscribeOptions {
  /** Replays what came after this id before going live (as a reconnecting client does). */
  lastEventId?: string
  /** Ends the iteration when aborted. */
  signal?: AbortSignal
}

/**
 * A message published on a channel or recorded by a resumable stream: what `Message` allows,
 * without the fields the bus owns (`id`) or that a record does not carry (`retry`, `comment`).
 */
export type Published<Message> = Message extends unknown
  ? Omit<Message, 'id' | 'retry' | 'comment'> & { id?: never, retry?: never, comment?: never }
  : never

/**
 * What `channel.publish()` accepts: one declared event name with that event's `Static<>`
 * payload (any name and data without a schema). No `id`: the bus assigns it; no `retry` or
 * `comment`: a channel carries events.
 */
export type ChannelPublishMessage<Events extends EventSchemas | undefined> = Events extends EventSchemas
  ? Published<Exclude<SchemaMessage<Events>, { event?: never, data?: never }>>
  : { event?: string, data?: unknown, id?: never, retry?: never, comment?: never }

/**
 * What a subscriber receives: the event name (`'message'` when published without one), the
 * data, and the id the bus assigned. Without a schema, string data comes back as the very
 * string published (`'42'` stays a string), anything else as JSON round-trips it; with a
 * schema, the data as its serializer wrote it, parsed back from JSON.
 */
export type ChannelMessage<Events extends EventSchemas | undefined> = Events extends EventSchemas
  ? { [Name in keyof Events & string]: { event: Name, data: Static<Events[Name]>, id: string } }[keyof Events & string]
  : { event: string, data: unknown, id: string }

/**
 * The live view of a channel returned by `channel.subscribe()`: an async iterator of messages
 * (replayed ones first when `lastEventId` was given), ending when the signal aborts, the
 * iterator is returned (`break`) or the server closes.
 */
export interface ChannelSubscription<Message> extends AsyncIterableIterator<Message> {
  /**
   * Resolves once the subscription is live and the replay (if any) is queued: events published
   * from then on are delivered. Rejects (coded error) when the bus failed; so does `next()`.
   */
  readonly ready: Promise<void>
  /**
   * True when `lastEventId` was older than the retained history or unknown: the replay holds
   * everything retained, and events before it were missed. Settled when `ready` resolves.
   */
  readonly gap: boolean
  /** Ends the subscription (what `break` in `for await` calls); queued messages are dropped. */
  return (): Promise<IteratorResult<Message>>
}
