import type { Static, TSchema } from '@sinclair/typebox'
import type { SSEMessage } from '../wire/message.js'

/** The fields every message may carry besides `event` and `data`. */
interface MessageFields {
  id?: string | number
  retry?: number
  comment?: string
}

/** A message of event `Name` whose `data` is `Data`; `message` may leave `event` out. */
type EventMessage<Name extends string, Data> =
  & MessageFields
  & (Name extends 'message' ? { event?: Name } : { event: Name })
  & (undefined extends Data ? { data?: Data } : { data: Data })

/** A message that dispatches nothing: it only moves Last-Event-ID or retry, or is a comment. */
interface ControlMessage extends MessageFields {
  event?: never
  data?: never
}

/**
 * What a route or channel with these event schemas may send: one declared event name with
 * that event's `Static<>` payload, or a control message.
 *
 * @example
 * type M = SchemaMessage<{ token: typeof Token }>
 * // { event: 'token', data: { text: string }, id?, retry?, comment? } | ControlMessage
 */
export type SchemaMessage<Events extends Record<string, TSchema>> =
  | { [Name in keyof Events & string]: EventMessage<Name, Static<Events[Name]>> }[keyof Events & string]
  | ControlMessage

/** The messages of a route whose schema is `Schema`: typed with `schema.sse`, free without. */
export type RouteMessage<Schema> =
  Schema extends { sse: infer Events extends Record<string, TSchema> } ? SchemaMessage<Events> : SSEMessage

/**
 * The route generic's `SSE`, for routes declared with explicit generics
 * (`app.get<{ Querystring: Q, SSE: typeof events }>(…)`): event name -> the TypeBox schema of
 * its `data`, or the type of its `data`.
 */
export type RouteEvents = Record<string, unknown>

/** What a route whose generic declares `SSE: Events` may send, as `SchemaMessage` does. */
export type RouteEventsMessage<Events extends RouteEvents> =
  | { [Name in keyof Events & string]: EventMessage<Name, Events[Name] extends TSchema ? Static<Events[Name]> : Events[Name]> }[keyof Events & string]
  | ControlMessage

/**
 * What `reply.sse` takes on a route: typed by `schema.sse` when TypeScript inferred the route's
 * schema; else by the route generic's `SSE` (explicit generics leave the schema type at its
 * default, which has no events); else any message.
 */
export type ReplyMessage<RouteGeneric, Schema> =
  Schema extends { sse: infer Events extends Record<string, TSchema> } ? SchemaMessage<Events>
    : RouteGeneric extends { SSE: infer Events extends RouteEvents } ? RouteEventsMessage<Events>
      : SSEMessage
