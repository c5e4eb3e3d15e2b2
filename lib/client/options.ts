// The builders by name (the module's own exports, read as `Type.Object`...), not TypeBox's `Type`
// object: that one holds every builder, and a browser bundle would carry them all (26.5 kB
// gzip instead of 18.3, measured with scripts/client-size.mjs).
import * as Type from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import { Errors } from '@sinclair/typebox/errors'
import { assertId } from '../wire/guards.js'
import { compileCheck } from './check.js'
import type { Check } from './check.js'
import { ClientOptionError } from './errors.js'
import { compileEvents } from './events.js'
import type { EventSchemas } from './events.js'
import { DEFAULT_MAX_EVENT_SIZE } from './parser.js'

// BodyInit and HeadersInit are names of the DOM lib only: a Node project compiled without it
// (lib: ["es2022"], types: ["node"]) would fail on them in our declarations. Both libs declare
// RequestInit, so the shipped types take them from it.
type BodyInit = NonNullable<RequestInit['body']>
type HeadersInit = NonNullable<RequestInit['headers']>

/** A request body that can be sent again on every reconnection (a stream could not). */
export type ReplayableBody = Exclude<BodyInit, ReadableStream>

/** The part of `fetch` that `connect` uses. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>

/**
 * Request headers: given once, or made for each connection attempt by a function (sync or
 * async), so that a reconnection carries a fresh token.
 */
export type HeadersOption = HeadersInit | (() => HeadersInit | Promise<HeadersInit>)

/**
 * The default `idleTimeout`: 45 s, three times the server's default heartbeat (15 s). A
 * fastify-conduit stream is never silent for more than 1.25 heartbeat intervals, so this
 * tolerates a missed heartbeat and a busy network, and a dead connection is noticed within a
 * minute.
 */
export const DEFAULT_IDLE_TIMEOUT = 45_000

// TypeBox numbers are finite (its default policy refuses NaN and Infinity).
const Milliseconds = Type.Number({ minimum: 0 })

/** How to wait between reconnections when the server has not sent `retry`. */
export const ReconnectOptionsSchema = Type.Object({
  /**
   * The first wait, in milliseconds; later ones double, with jitter, up to `maxDelay`.
   * @default 100
   */
  minDelay: Type.Optional(Milliseconds),
  /**
   * The longest wait, in milliseconds, no less than `minDelay`. A larger `retry` from the
   * server is still honoured; a larger `Retry-After` is cut to it (then jittered by up to half).
   * @default 30000
   */
  maxDelay: Type.Optional(Milliseconds)
})

/** How to wait between reconnections when the server has not sent `retry`. */
export type ReconnectOptions = Static<typeof ReconnectOptionsSchema>

/** What `onGap` learns. */
export interface GapInfo {
  /**
   * The Last-Event-ID the client resumed from: some events after it were lost (the server no
   * longer holds them), and those that follow are the oldest it still has. On a merged stream
   * (`app.sse.merge()`) the gap is one channel's: it comes before that channel's replayed
   * events, and other channels' replayed events may have been yielded before it.
   */
  lastEventId: string
}

/** What `onReconnect` learns before each wait. */
export interface ReconnectInfo {
  /** 1 for the first attempt after a drop; it restarts at 1 once a connection opens. */
  attempt: number
  /** How long the client waits before reconnecting, in milliseconds. */
  delay: number
  /** The Last-Event-ID the next request sends (`''`: none). */
  lastEventId: string
  /**
   * Why: the fetch or read error, `ClientIdleTimeoutError` when no byte came for
   * `idleTimeout`, `ClientStatusError` for a `503` or `429` with `Retry-After` (the delay then
   * follows it), or `undefined` when the server ended the response.
   */
  error?: unknown
}

/**
 * The options of `connect` that are plain data, as a TypeBox schema: their types come from it,
 * and `connect` checks them with it (compiled once).
 */
export const ConnectDataOptionsSchema = Type.Object({
  /**
   * The last event ID already seen: sent as `Last-Event-ID` from the first request on, so the
   * server resumes after it.
   * @default '' (none)
   */
  lastEventId: Type.Optional(Type.String()),
  /**
   * The request method.
   * @default 'GET', or 'POST' when `body` is given
   */
  method: Type.Optional(Type.String({ minLength: 1 })),
  /**
   * Reconnect after the connection drops, goes idle (`idleTimeout`) or the server ends the
   * response, as EventSource does, and after a 503 or 429 with `Retry-After`; `false` ends the
   * iteration instead (a failure then throws `ClientNetworkError`, a 503 `ClientStatusError`).
   * The server's `retry` replaces `minDelay` once received; the first wait after a drop is then
   * between half and one and a half times it, uniformly, to spread a reconnect wave.
   * @default { minDelay: 100, maxDelay: 30000 }
   */
  reconnect: Type.Optional(Type.Union([ReconnectOptionsSchema, Type.Literal(false)])),
  /**
   * Milliseconds without a byte (heartbeats count; time the consumer spends on an event does
   * not) after which the connection is taken for dead, closed, and reconnected with the
   * Last-Event-ID: a half-open connection (a NAT timeout, a proxy that drops silently) would
   * otherwise hang the client forever. Keep it above the server's `heartbeat` (a
   * fastify-conduit stream is silent for at most 1.25 heartbeat intervals); `false` turns it
   * off, for a server that sends no heartbeats.
   * @default 45000 (three times the server's default heartbeat of 15000)
   */
  idleTimeout: Type.Optional(Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Literal(false)])),
  /**
   * The largest event accepted, in bytes (UTF-8, field names and line ends included). A larger
   * one, even before it ends, fails the iteration with `ClientEventTooLargeError`: the client's
   * memory stays bounded whatever the server sends.
   * @default 4194304 (4 MiB)
   */
  maxEventSize: Type.Optional(Type.Integer({ minimum: 1 }))
})

/**
 * Options of `connect`. `lastEventId`, `method` and `reconnect` are described by
 * {@link ConnectDataOptionsSchema}; the others hold platform objects and functions and are typed
 * here (the check gives them their shape: an object with `addEventListener`, a function).
 */
export interface ConnectOptions extends Static<typeof ConnectDataOptionsSchema> {
  /**
   * Event name -> TypeBox schema of its data. Each event's data is then parsed as JSON and
   * checked (schemas are compiled once per `connect`); an undeclared event name or a mismatch
   * ends the iteration with `ClientUndeclaredEventError` or `ClientInvalidDataError`.
   * Frames without `event:` are named `'message'`.
   * @default undefined (data stays a string, any event name is accepted)
   */
  events?: EventSchemas
  /**
   * Aborting it ends the iteration cleanly (no error) and closes the connection.
   * @default undefined
   */
  signal?: AbortSignal
  /**
   * Extra request headers. `Accept: text/event-stream` and `Cache-Control: no-cache` are sent
   * unless set here; `Last-Event-ID` is set by the client. A function (sync or async) is called
   * for every connection attempt, reconnections included, so each carries a fresh token; an
   * error it throws ends the iteration with that error, and invalid headers it returns end it
   * with `ClientOptionError`.
   * @default undefined
   */
  headers?: HeadersOption
  /**
   * The request body, sent again on every reconnection.
   * @default undefined
   */
  body?: ReplayableBody
  /**
   * Called before each wait to reconnect. An error it throws ends the iteration.
   * @default undefined
   */
  onReconnect?: (info: ReconnectInfo) => void
  /**
   * Called when the server signals (with a `: gap` comment, as a fastify-conduit channel does)
   * that events after the Last-Event-ID the client resumed from are no longer held: some were
   * lost. It runs before the events that follow the gap are yielded, so the application can
   * refetch its state first. An error it throws ends the iteration.
   * @default undefined
   */
  onGap?: (info: GapInfo) => void
  /**
   * The `fetch` to use: to add credentials, a proxy agent, or a test double.
   * @default globalThis.fetch
   */
  fetch?: FetchLike
}

/** The settled form of the options. */
export interface Config {
  readonly url: string
  readonly method: string
  /** The headers, or the function making them for each attempt. */
  readonly headers: Headers | (() => HeadersInit | Promise<HeadersInit>)
  readonly body: ReplayableBody | undefined
  readonly signal: AbortSignal | undefined
  readonly fetch: FetchLike
  readonly minDelay: number
  readonly maxDelay: number
  readonly reconnect: boolean
  readonly onReconnect: ((info: ReconnectInfo) => void) | undefined
  readonly onGap: ((info: GapInfo) => void) | undefined
  readonly idleTimeout: number | false
  readonly maxEventSize: number
  readonly decode: ((event: string, data: string) => unknown) | undefined
  /** The `lastEventId` option: where the first request resumes. */
  readonly lastEventId: string
}

// What `connect` checks with one compiled schema: the data options, and the shape of the others.
const AnyFunction = Type.Function([], Type.Unknown())
const OptionsSchema = Type.Object({
  ...ConnectDataOptionsSchema.properties,
  events: Type.Optional(Type.Object({})),
  signal: Type.Optional(Type.Object({ addEventListener: AnyFunction })),
  onReconnect: Type.Optional(AnyFunction),
  onGap: Type.Optional(AnyFunction),
  fetch: Type.Optional(AnyFunction)
})

const LAST_EVENT_ID = 'must be a string without CR, LF or NUL'
const FETCH = 'must be a function (no global fetch here)'

/** What each option must be, by the name `ClientOptionError` gives it. */
const PROBLEMS: Record<string, string> = {
  options: 'must be an object',
  lastEventId: LAST_EVENT_ID,
  method: 'must be a non-empty string',
  reconnect: 'must be an object or false',
  'reconnect.minDelay': 'must be a non-negative number of milliseconds',
  'reconnect.maxDelay': 'must be a number of milliseconds no less than minDelay',
  events: 'must be an object of event name -> TypeBox schema',
  signal: 'must be an AbortSignal',
  onReconnect: 'must be a function',
  onGap: 'must be a function',
  idleTimeout: 'must be a positive number of milliseconds, or false',
  maxEventSize: 'must be a positive integer number of bytes',
  fetch: FETCH
}

// Compiled on the first `connect`, not at import: a page that never connects pays nothing.
let optionsCheck: Check | undefined

/**
 * Checks the options of `connect` and settles them: defaults filled in, the URL resolved,
 * the headers merged, the event schemas compiled. A wrong option throws `ClientOptionError`
 * naming it.
 */
export function settleOptions (url: string | URL, options: ConnectOptions): Config {
  optionsCheck ??= compileCheck(OptionsSchema)
  if (!optionsCheck.check(options)) throw optionError(options, optionsCheck)
  const { lastEventId = '', signal, reconnect = {}, onReconnect, onGap, events } = options
  // The server's own guard: an id it would refuse to write is one the client may not send.
  try {
    assertId(lastEventId)
  } catch (err) {
    throw new ClientOptionError('lastEventId', LAST_EVENT_ID, { cause: err })
  }
  const fetch = options.fetch ?? globalThis.fetch
  if (typeof fetch !== 'function') throw new ClientOptionError('fetch', FETCH)
  const method = options.method ?? (options.body === undefined ? 'GET' : 'POST')
  if (options.body !== undefined && /^(GET|HEAD)$/i.test(method)) {
    throw new ClientOptionError('body', `cannot be sent with ${method}`)
  }
  const { minDelay = 100, maxDelay = 30_000 } = reconnect === false ? {} : reconnect
  if (maxDelay < minDelay) throw new ClientOptionError('reconnect.maxDelay', PROBLEMS['reconnect.maxDelay'])
  return {
    url: resolveURL(url),
    method,
    headers: typeof options.headers === 'function' ? options.headers : requestHeaders(options.headers),
    body: options.body,
    signal,
    fetch,
    minDelay,
    maxDelay,
    reconnect: reconnect !== false,
    onReconnect,
    onGap,
    idleTimeout: options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT,
    maxEventSize: options.maxEventSize ?? DEFAULT_MAX_EVENT_SIZE,
    decode: events === undefined ? undefined : compileEvents(events),
    lastEventId
  }
}

/**
 * Explains a failed check (only then: the walk costs more than the check) as the error of the
 * option it is about: the deepest named one on the path of TypeBox's first error.
 */
function optionError (options: unknown, check: Check): ClientOptionError {
  /* c8 ignore next -- a failed check always has a first error; the fallback guards TypeBox */
  let path = check.explain(options)?.path ?? ''
  // `reconnect` is a union (an object or false): TypeBox reports the union; an object is
  // explained against the object's schema, to name `reconnect.minDelay` or `reconnect.maxDelay`.
  const reconnect = path === '/reconnect' ? (options as { reconnect: unknown }).reconnect : undefined
  if (typeof reconnect === 'object' && reconnect !== null) {
    /* c8 ignore next -- an object that fails the union fails the object's schema */
    path += Errors(ReconnectOptionsSchema, reconnect).First()?.path ?? ''
  }
  const segments = path.split('/').slice(1)
  for (let n = segments.length; n > 0; n--) {
    const option = segments.slice(0, n).join('.')
    if (option in PROBLEMS) return new ClientOptionError(option, PROBLEMS[option])
  }
  return new ClientOptionError('options', PROBLEMS.options)
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

/**
 * The request headers: the defaults, overridden by `init`. Invalid headers (given as the
 * option, or returned by its function) throw `ClientOptionError` naming `headers`.
 */
export function requestHeaders (init: HeadersInit | undefined): Headers {
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
