import { ReconnectingEventStream } from './event-stream.js'
import type { ClientEventStream } from './event-stream.js'
import type { ConduitEvent, EventSchemas, TypedEvent } from './events.js'
import { settleOptions } from './options.js'
import type { ConnectOptions } from './options.js'

/**
 * Reads a Server-Sent Events endpoint as an async iterable of events, with `fetch` (Node 20+
 * and browsers alike). It reconnects after a drop, or after `idleTimeout` without a byte,
 * waiting around the server's `retry` (else an exponential backoff with jitter), and resumes
 * with `Last-Event-ID`. A status other than 200, or a Content-Type other than
 * `text/event-stream`, ends it with an error, except a 503 or 429 with `Retry-After`, retried
 * after that delay; 204 ends it cleanly. An event over `maxEventSize` bytes ends it with
 * `ClientEventTooLargeError`; a server's `: gap` calls `onGap`. With `events`, each event's
 * data is parsed as JSON, checked against its TypeBox schema, and typed: the events form a
 * union discriminated by `event`.
 *
 * Options are checked at once: a wrong one throws `ClientOptionError`. Nothing is requested
 * until iteration starts.
 *
 * @example
 * import { Type } from '@sinclair/typebox'
 * import { connect } from 'fastify-conduit/client'
 *
 * const stream = connect('http://127.0.0.1:3000/chat', {
 *   events: {
 *     token: Type.Object({ text: Type.String() }),
 *     done: Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })
 *   },
 *   signal: AbortSignal.timeout(60_000)
 * })
 * for await (const ev of stream) {
 *   if (ev.event === 'token') process.stdout.write(ev.data.text)
 *   else break // ev.data.reason is 'stop' | 'length'
 * }
 */
export function connect<Schemas extends EventSchemas> (
  url: string | URL,
  options: ConnectOptions & { events: Schemas }
): ClientEventStream<TypedEvent<Schemas>>
export function connect (url: string | URL, options?: ConnectOptions): ClientEventStream<ConduitEvent>
export function connect (url: string | URL, options: ConnectOptions = {}): ClientEventStream<unknown> {
  return new ReconnectingEventStream(settleOptions(url, options))
}
