import { text } from 'node:stream/consumers'
import { compileEvents } from '../client/events.js'
import type { ConduitEvent, EventSchemas, TypedEvent } from '../client/events.js'
import type { ParsedEvent } from '../client/parser.js'
import { compileOptions } from '../options.js'
import { TestEventStream } from './event-stream.js'
import type { EventDecoder } from './event-stream.js'
import { StreamEventsOptionsSchema } from './options.js'
import type { StreamEventsOptions } from './options.js'
import { canUseHttp, openHttp, openInject } from './transport.js'
import type { RequestSpec, TestableApp } from './transport.js'

const checkOptions = compileOptions('options', StreamEventsOptionsSchema)
const EVENT_STREAM = /^text\/event-stream\s*(;|$)/i

/**
 * Opens an SSE route of `app` as a test client and resolves, once the response head arrived,
 * to its status, headers and events: a {@link TestEventStream}, an async iterator of events
 * parsed as EventSource parses them. On a listening server the request goes over a real
 * connection (`node:http`); otherwise through `app.inject`, streamed. With `events` (the
 * route's `schema.sse`), each event's data is parsed as JSON, checked and typed.
 *
 * The body is read only as the test asks for events: a test that awaits between events is a
 * slow client, and `readDelay` makes one. Leaving a `for await` loop, `limit`, or `close()`
 * disconnect as a client going away does.
 *
 * Options are checked at once: a wrong one rejects with `FST_ERR_CONDUIT_INVALID_OPTION`. A
 * response that is not an event stream (another status or Content-Type) yields no event; its
 * body is in `text`.
 *
 * @example
 * import { streamEvents } from 'fastify-conduit/testing'
 *
 * const stream = await streamEvents(app, '/chat', { events: { token: Token, done: Done } })
 * t.equal(stream.statusCode, 200)
 * t.same(await stream.collect(), [
 *   { event: 'token', data: { text: 'Hello' }, id: '1' },
 *   { event: 'done', data: { reason: 'stop' }, id: '1' }
 * ])
 */
export function streamEvents<const Schemas extends EventSchemas> (
  app: TestableApp,
  url: string,
  options: StreamEventsOptions<Schemas> & { events: Schemas }
): Promise<TestEventStream<TypedEvent<Schemas>>>
export function streamEvents (app: TestableApp, url: string, options?: StreamEventsOptions): Promise<TestEventStream<ConduitEvent>>
export async function streamEvents (app: TestableApp, url: string, options: StreamEventsOptions<EventSchemas | undefined> = {}): Promise<TestEventStream<unknown>> {
  const { events, ...rest } = options
  const { method, headers = {}, query, body, lastEventId = '', limit = Infinity, readDelay = 0, transport } = checkOptions(rest)
  const decode = decoderOf(events)
  const spec = requestSpec(url, method, headers, query, body, lastEventId)
  const response = transport === 'http' || (transport === undefined && canUseHttp(app)) ? await openHttp(app, spec) : await openInject(app, spec)
  const isEventStream = response.statusCode === 200 && EVENT_STREAM.test(String(response.headers['content-type']))
  return new TestEventStream(response, isEventStream ? undefined : await text(response.body), { lastEventId, decode, limit, readDelay })
}

function decoderOf (events: EventSchemas | undefined): EventDecoder {
  if (events === undefined) return ({ event, data, id, retry }: ParsedEvent) => retry === undefined ? { event, data, id } : { event, data, id, retry }
  const decode = compileEvents(events)
  return ({ event, data, id, retry }: ParsedEvent) => {
    const value = decode(event, data)
    return retry === undefined ? { event, data: value, id } : { event, data: value, id, retry }
  }
}

function requestSpec (url: string, method: string | undefined, headers: Record<string, string>, query: Record<string, string> | undefined,
  body: unknown, lastEventId: string): RequestSpec {
  const names = new Set(Object.keys(headers).map((name) => name.toLowerCase()))
  const sent: Record<string, string> = { ...headers }
  if (!names.has('accept')) sent.accept = 'text/event-stream'
  if (lastEventId !== '') sent['last-event-id'] = lastEventId
  let payload: string | undefined
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body)
    if (typeof body !== 'string' && !names.has('content-type')) sent['content-type'] = 'application/json'
  }
  let path = url
  if (query !== undefined) {
    const search = new URLSearchParams(query).toString()
    if (search !== '') path += (path.includes('?') ? '&' : '?') + search
  }
  return { method: method ?? (body === undefined ? 'GET' : 'POST'), path, headers: sent, body: payload }
}
