import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import type { EventSchemas } from '../client/events.js'
import { Milliseconds } from '../options.js'

export const StreamEventsOptionsSchema = Type.Object({
  /**
   * The request method.
   * @default 'GET', or 'POST' when there is a `body`
   */
  method: Type.Optional(Type.String({ minLength: 1, errorMessage: 'must be an HTTP method' })),
  /** Request headers; `Accept: text/event-stream` is sent unless set here. */
  headers: Type.Optional(Type.Record(Type.String(), Type.String(), { errorMessage: 'must be an object of header name -> string' })),
  /** Query string parameters, added to `url`'s. */
  query: Type.Optional(Type.Record(Type.String(), Type.String(), { errorMessage: 'must be an object of name -> string' })),
  /**
   * The request body: a string is sent as it is, anything else as JSON (with
   * `Content-Type: application/json` unless `headers` has one).
   */
  body: Type.Optional(Type.Unknown()),
  /** Sent as the `Last-Event-ID` header, as a reconnecting EventSource does. */
  lastEventId: Type.Optional(Type.String({ errorMessage: 'must be a string' })),
  /**
   * Stop after this many events: the iteration ends and the client disconnects.
   * @default no limit: until the server ends the response
   */
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, errorMessage: 'must be a positive integer' })),
  /**
   * Milliseconds to wait before reading each chunk of the body: a slow client. Unread bytes back
   * up in the socket (or in `inject`'s stream) and the server's backpressure applies.
   * @default 0
   */
  readDelay: Type.Optional(Milliseconds()),
  /**
   * How the request is made: `'http'` over a real connection to the listening server (its
   * first address), `'inject'` with `app.inject` (no socket; the body is streamed as it is
   * written).
   * @default 'http' when the server is listening, else 'inject'
   */
  transport: Type.Optional(Type.Union([Type.Literal('http'), Type.Literal('inject')], { errorMessage: "must be 'http' or 'inject'" }))
})

/** Options of {@link streamEvents}. */
export interface StreamEventsOptions<Schemas extends EventSchemas | undefined = undefined> extends Static<typeof StreamEventsOptionsSchema> {
  /**
   * The route's `schema.sse` (or any event name -> TypeBox schema): each event's data is parsed
   * as JSON and checked against its schema, and the events are typed as a union discriminated
   * by `event`. An undeclared event or a mismatch makes the iteration throw
   * (`FST_ERR_CONDUIT_CLIENT_UNDECLARED_EVENT`, `FST_ERR_CONDUIT_CLIENT_INVALID_DATA`).
   * @default none: `data` is the text as received
   */
  events?: Schemas
}
