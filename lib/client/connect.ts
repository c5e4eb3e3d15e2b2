import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { ValueError } from '@sinclair/typebox/errors'
import { Value } from '@sinclair/typebox/value'
import {
  ClientContentTypeError,
  ClientInvalidDataError,
  ClientNetworkError,
  ClientOptionError,
  ClientStatusError,
  ClientUndeclaredEventError
} from './errors.js'
import { assertId } from '../wire/guards.js'
import { EventStreamParser } from './parser.js'
import { reconnectDelay, wait } from './reconnect.js'

// BodyInit and HeadersInit are names of the DOM lib only: a Node project compiled without it
// (lib: ["es2022"], types: ["node"]) would fail on them in our declarations. Both libs declare
// RequestInit, so the shipped types take them from it.
type BodyInit = NonNullable<RequestInit['body']>
type HeadersInit = NonNullable<RequestInit['headers']>

/** Event name -> TypeBox schema of that event's `data`, as in the route's `schema.sse`. */
export type EventSchemas = Record<string, TSchema>

/** One event as `connect` yields it. */
export interface ConduitEvent<Name extends string = string, Data = string> {
  /** The event type; `'message'` for frames without an `event:` field. */
  event: Name
  /**
   * The data: the `data:` lines joined with LF. With `events`, the JSON they hold, checked
   * against the event's schema (an event sent without data gives `undefined`).
   */
  data: Data
  /**
   * The last event ID after this event: its own `id`, or the latest one before it (ids
   * persist, as EventSource's `lastEventId` does); `''` when the server has sent none.
   */
  id: string
  /** The reconnection time in milliseconds, when this event's frame set one with `retry:`. */
  retry?: number
}

/** The events of a stream read with `events`: a union discriminated by `event`. */
export type TypedEvent<Schemas extends EventSchemas> = {
  [Name in keyof Schemas & string]: ConduitEvent<Name, Static<Schemas[Name]>>
}[keyof Schemas & string]

/** A request body that can be sent again on every reconnection (a stream could not). */
export type ReplayableBody = Exclude<BodyInit, ReadableStream>

/** The part of `fetch` that `connect` uses. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>

/** How to wait between reconnections when the server has not sent `retry`. */
export interface ReconnectOptions {
  /**
   * The first wait, in milliseconds; later ones double, with jitter, up to `maxDelay`.
   * @default 100
   */
  minDelay?: number
  /**
   * The longest wait, in milliseconds. A larger `retry` from the server is still honoured.
   * @default 30000
   */
  maxDelay?: number
}

/** What `onReconnect` learns before each wait. */
export interface ReconnectInfo {
  /** 1 for the first attempt after a drop; it restarts at 1 once a connection opens. */
  attempt: number
  /** How long the client waits before reconnecting, in milliseconds. */
  delay: number
  /** The Last-Event-ID the next request sends (`''`: none). */
  lastEventId: string
  /** Why: the fetch or read error, or `undefined` when the server ended the response. */
  error?: unknown
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  /**
   * Event name -> TypeBox schema of its data. Each event's data is then parsed as JSON and
   * checked (schemas are compiled once per `connect`); an undeclared event name or a mismatch
   * ends the iteration with `ClientUndeclaredEventError` or `ClientInvalidDataError`.
   * Frames without `event:` are named `'message'`.
   * @default undefined (data stays a string, any event name is accepted)
   */
  events?: EventSchemas
  /**
   * The last event ID already seen: sent as `Last-Event-ID` from the first request on, so the
   * server resumes after it.
   * @default '' (none)
   */
  lastEventId?: string
  /**
   * Aborting it ends the iteration cleanly (no error) and closes the connection.
   * @default undefined
   */
  signal?: AbortSignal
  /**
   * Extra request headers. `Accept: text/event-stream` and `Cache-Control: no-cache` are sent
   * unless set here; `Last-Event-ID` is set by the client.
   * @default undefined
   */
  headers?: HeadersInit
  /**
   * The request method.
   * @default 'GET', or 'POST' when `body` is given
   */
  method?: string
  /**
   * The request body, sent again on every reconnection.
   * @default undefined
   */
  body?: ReplayableBody
  /**
   * Reconnect after the connection drops or the server ends the response, as EventSource
   * does; `false` ends the iteration instead (a failure then throws `ClientNetworkError`).
   * The server's `retry` replaces `minDelay` once received.
   * @default { minDelay: 100, maxDelay: 30000 }
   */
  reconnect?: ReconnectOptions | false
  /**
   * Called before each wait to reconnect. An error it throws ends the iteration.
   * @default undefined
   */
  onReconnect?: (info: ReconnectInfo) => void
  /**
   * The `fetch` to use: to add credentials, a proxy agent, or a test double.
   * @default globalThis.fetch
   */
  fetch?: FetchLike
}

/** The settled form of the options. */
interface Config {
  readonly url: string
  readonly method: string
  readonly headers: Headers
  readonly body: ReplayableBody | undefined
  readonly signal: AbortSignal | undefined
  readonly fetch: FetchLike
  readonly minDelay: number
  readonly maxDelay: number
  readonly reconnect: boolean
  readonly onReconnect: ((info: ReconnectInfo) => void) | undefined
  readonly decode: ((event: string, data: string) => unknown) | undefined
}

/**
 * The events of one SSE endpoint, read with `for await`. Nothing is requested until iteration
 * starts; leaving the loop (`break`, `return`, an error) closes the connection. Iterating again
 * later opens a new connection that resumes after `lastEventId`.
 */
export interface EventStream<Event> extends AsyncIterable<Event> {
  /**
   * The last event ID received (or given as the `lastEventId` option): the id of the event
   * last yielded, or of a later frame that carried only an `id`. `''` when none.
   */
  readonly lastEventId: string
}

class ConduitEventStream<Event> implements EventStream<Event> {
  readonly #config: Config
  #lastEventId: string
  #retry: number | undefined

  constructor (config: Config, lastEventId: string) {
    this.#config = config
    this.#lastEventId = lastEventId
  }

  get lastEventId (): string {
    return this.#lastEventId
  }

  [Symbol.asyncIterator] (): AsyncIterator<Event> {
    return this.#run()
  }

  async * #run (): AsyncGenerator<Event, void, undefined> {
    const config = this.#config
    const signal = config.signal
    let attempt = 0
    for (;;) {
      if (signal?.aborted === true) return
      // One controller per request: aborting it ends the fetch and the body read, whether the
      // user aborted, the consumer left the loop, or an error ends the iteration.
      const controller = new AbortController()
      const abort = (): void => { controller.abort() }
      signal?.addEventListener('abort', abort)
      let failed = false
      let failure: unknown
      try {
        let response: Response | undefined
        // Called as a plain function: a browser's fetch called as a method of another object
        // throws "Illegal invocation".
        const fetch = config.fetch
        try {
          response = await fetch(config.url, this.#requestInit(controller.signal))
        } catch (err) {
          failed = true
          failure = err
        }
        if (response !== undefined) {
          // HTML §9.2.3: a 200 with Content-Type text/event-stream "announces the connection";
          // any other answer "fails the connection" (no reconnection). A 204 is how a
          // fastify-conduit server tells a client to stop: it ends the iteration cleanly.
          if (response.status === 204) return
          if (response.status !== 200) throw new ClientStatusError(response.status)
          const contentType = response.headers.get('content-type') ?? ''
          if (!isEventStream(contentType)) throw new ClientContentTypeError(contentType)
          attempt = 0
          // A body-less 200 (a custom fetch can make one) reads as an empty stream.
          if (response.body !== null) {
            const reader = response.body.getReader()
            // The last event ID and the reconnection time outlive the connection; the parser's
            // buffers do not: "If the file ends in the middle of an event [...] the incomplete
            // event is not dispatched."
            const parser = new EventStreamParser(this.#lastEventId)
            for (;;) {
              let chunk: ReadableStreamReadResult<Uint8Array>
              try {
                chunk = await reader.read()
              } catch (err) {
                failed = true
                failure = err
                break
              }
              if (chunk.done) break
              const events = parser.feed(chunk.value)
              if (parser.retry !== undefined) this.#retry = parser.retry
              for (const parsed of events) {
                const event = (config.decode === undefined
                  ? parsed
                  : { ...parsed, data: config.decode(parsed.event, parsed.data) }) as Event
                // Before the yield: a consumer that stops here resumes after this very event.
                this.#lastEventId = parsed.id
                yield event
              }
              this.#lastEventId = parser.lastEventId
            }
          }
        }
      } finally {
        controller.abort()
        signal?.removeEventListener('abort', abort)
      }
      if (isAborted(signal)) return
      if (!config.reconnect) {
        if (failed) throw new ClientNetworkError(failure)
        return
      }
      attempt++
      const delay = reconnectDelay(attempt, this.#retry, config.minDelay, config.maxDelay)
      const info: ReconnectInfo = { attempt, delay, lastEventId: this.#lastEventId }
      if (failed) info.error = failure
      config.onReconnect?.(info)
      await wait(delay, signal)
    }
  }

  #requestInit (signal: AbortSignal): RequestInit {
    const config = this.#config
    const headers = new Headers(config.headers)
    // §9.2.3: "If the event source's last event ID string is not the empty string, set
    // `Last-Event-ID`/last event ID string, encoded as UTF-8, in request's header list."
    if (this.#lastEventId !== '') headers.set('last-event-id', utf8ByteString(this.#lastEventId))
    return { method: config.method, headers, body: config.body, signal }
  }
}

/**
 * Reads a Server-Sent Events endpoint as an async iterable of events, with `fetch` (Node 20+
 * and browsers alike). It reconnects after a drop, waiting the server's `retry` (else an
 * exponential backoff with jitter), and resumes with `Last-Event-ID`. A status other than 200,
 * or a Content-Type other than `text/event-stream`, ends it with an error; 204 ends it
 * cleanly. With `events`, each event's data is parsed as JSON, checked against its TypeBox
 * schema, and typed: the events form a union discriminated by `event`.
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
): EventStream<TypedEvent<Schemas>>
export function connect (url: string | URL, options?: ConnectOptions): EventStream<ConduitEvent>
export function connect (url: string | URL, options: ConnectOptions = {}): EventStream<unknown> {
  if (typeof options !== 'object' || options === null) throw new ClientOptionError('options', 'must be an object')
  const { lastEventId = '', signal, reconnect = {}, onReconnect, events } = options
  if (typeof lastEventId !== 'string') throw new ClientOptionError('lastEventId', LAST_EVENT_ID)
  // The server's own guard: an id it would refuse to write is one the client may not send.
  try {
    assertId(lastEventId)
  } catch (err) {
    throw new ClientOptionError('lastEventId', LAST_EVENT_ID, { cause: err })
  }
  if (signal !== undefined && typeof signal?.addEventListener !== 'function') {
    throw new ClientOptionError('signal', 'must be an AbortSignal')
  }
  if (onReconnect !== undefined && typeof onReconnect !== 'function') {
    throw new ClientOptionError('onReconnect', 'must be a function')
  }
  const fetch = options.fetch ?? globalThis.fetch
  if (typeof fetch !== 'function') throw new ClientOptionError('fetch', 'must be a function (no global fetch here)')
  const method = options.method ?? (options.body === undefined ? 'GET' : 'POST')
  if (typeof method !== 'string' || method === '') throw new ClientOptionError('method', 'must be a non-empty string')
  if (options.body !== undefined && /^(GET|HEAD)$/i.test(method)) {
    throw new ClientOptionError('body', `cannot be sent with ${method}`)
  }
  if (reconnect !== false && (typeof reconnect !== 'object' || reconnect === null)) {
    throw new ClientOptionError('reconnect', 'must be an object or false')
  }
  const { minDelay = 100, maxDelay = 30_000 } = reconnect === false ? {} : reconnect
  if (!isDelay(minDelay)) throw new ClientOptionError('reconnect.minDelay', 'must be a non-negative number of milliseconds')
  if (!isDelay(maxDelay) || maxDelay < minDelay) {
    throw new ClientOptionError('reconnect.maxDelay', 'must be a number of milliseconds no less than minDelay')
  }
  const config: Config = {
    url: resolveURL(url),
    method,
    headers: requestHeaders(options.headers),
    body: options.body,
    signal,
    fetch,
    minDelay,
    maxDelay,
    reconnect: reconnect !== false,
    onReconnect,
    decode: events === undefined ? undefined : compileEvents(events)
  }
  return new ConduitEventStream(config, lastEventId)
}

const LAST_EVENT_ID = 'must be a string without CR, LF or NUL'

// A function, not an inline check: TypeScript would keep `aborted` narrowed across awaits.
function isAborted (signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

function isDelay (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
}

/** EventSource resolves its URL against the document's; in Node it must be absolute. */
function resolveURL (url: string | URL): string {
  const base = (globalThis as { location?: { href?: string } }).location?.href
  try {
    return new URL(url, base).href
  } catch (err) {
    throw new ClientOptionError('url', 'is not a valid URL', { cause: err })
  }
}

function requestHeaders (init: HeadersInit | undefined): Headers {
  // §9.2.3 sets `Accept: text/event-stream`; `no-cache` keeps caches from answering for the server.
  const headers = new Headers({ accept: 'text/event-stream', 'cache-control': 'no-cache' })
  let own: Headers
  try {
    own = new Headers(init)
  } catch (err) {
    throw new ClientOptionError('headers', 'are not valid headers', { cause: err })
  }
  for (const [name, value] of own) headers.set(name, value)
  return headers
}

/** The MIME type essence (before any `;` parameter) must be text/event-stream. */
function isEventStream (contentType: string): boolean {
  const semicolon = contentType.indexOf(';')
  const essence = semicolon === -1 ? contentType : contentType.slice(0, semicolon)
  return essence.trim().toLowerCase() === 'text/event-stream'
}

/**
 * Header values are byte strings (each character a byte), so an id with characters past
 * U+00FF would make `fetch` throw, and one with U+0080-U+00FF would go out as Latin-1. The
 * spec sends the id "encoded as UTF-8": these are its bytes, one character each.
 */
function utf8ByteString (text: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text
  let bytes = ''
  for (const byte of new TextEncoder().encode(text)) bytes += String.fromCharCode(byte)
  return bytes
}

/** Compiles each schema once; the returned function parses and checks one event's data. */
function compileEvents (events: EventSchemas): (event: string, data: string) => unknown {
  if (typeof events !== 'object' || events === null || Array.isArray(events)) {
    throw new ClientOptionError('events', 'must be an object of event name -> TypeBox schema')
  }
  const checks = new Map<string, Check>()
  for (const name of Object.keys(events)) checks.set(name, compileCheck(name, events[name]))
  return function decode (event: string, data: string): unknown {
    const check = checks.get(event)
    if (check === undefined) throw new ClientUndeclaredEventError(event)
    // A fastify-conduit server writes an event without data as one empty `data:` line.
    let value: unknown
    if (data !== '') {
      try {
        value = JSON.parse(data)
      } catch {
        // Not the parser's message: it quotes the payload.
        throw new ClientInvalidDataError(event, '', 'data is not JSON')
      }
    }
    if (!check.check(value)) {
      // Explain only on failure: the compiled check is cheap, the error walk is not.
      const first = check.errors(value)
      /* c8 ignore next -- a failed check always has a first error; the fallback guards TypeBox */
      throw new ClientInvalidDataError(event, first?.path ?? '', first?.message ?? 'invalid')
    }
    return value
  }
}

interface Check {
  check: (value: unknown) => boolean
  errors: (value: unknown) => ValueError | undefined
}

function compileCheck (name: string, schema: unknown): Check {
  if (typeof schema !== 'object' || schema === null) {
    throw new ClientOptionError(`events.${name}`, 'must be a TypeBox schema')
  }
  try {
    const compiled = TypeCompiler.Compile(schema as TSchema)
    return { check: (value) => compiled.Check(value), errors: (value) => compiled.Errors(value).First() }
  } catch (err) {
    // A Content-Security-Policy without 'unsafe-eval' forbids the compiler's `new Function`:
    // check by walking the schema instead, slower but the same answers.
    if (err instanceof EvalError) {
      return {
        check: (value) => Value.Check(schema as TSchema, value),
        errors: (value) => Value.Errors(schema as TSchema, value).First()
      }
    }
    throw new ClientOptionError(`events.${name}`, 'is not a schema TypeBox can compile', { cause: err })
  }
}
