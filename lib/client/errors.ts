/**
 * Every error the client throws. The server's errors are made with `@fastify/error`; the client
 * runs in browsers too, so its errors are plain `Error` subclasses with the same shape: a
 * `code` (`FST_ERR_CONDUIT_CLIENT_<REASON>`) to match on, never the message text, and a `type`
 * string to switch on, plus the offending field. Messages never contain event payloads.
 */

/** What went wrong, one string per error class. */
export type ConduitClientErrorType =
  | 'invalid-option'
  | 'status'
  | 'content-type'
  | 'network'
  | 'undeclared-event'
  | 'invalid-data'
  | 'event-too-large'
  | 'idle-timeout'

/** The base class of every client error. */
export class ConduitClientError extends Error {
  /** `FST_ERR_CONDUIT_CLIENT_<REASON>`. */
  readonly code: string
  /** What went wrong. */
  readonly type: ConduitClientErrorType

  constructor (code: string, type: ConduitClientErrorType, message: string, options?: { cause?: unknown }) {
    super('fastify-conduit: ' + message, options)
    this.name = 'ConduitClientError'
    this.code = code
    this.type = type
  }
}

/** An option of `connect` has the wrong type or value. Thrown by `connect` itself. */
export class ClientOptionError extends ConduitClientError {
  /** The option's name, such as `reconnect.minDelay`. */
  readonly option: string

  constructor (option: string, problem: string, options?: { cause?: unknown }) {
    super('FST_ERR_CONDUIT_CLIENT_INVALID_OPTION', 'invalid-option', `option "${option}" ${problem}`, options)
    this.option = option
  }
}

/**
 * The server answered with a status other than 200 (or 204, which ends the stream cleanly).
 * Like EventSource, the client does not reconnect after this, except after a `503` or `429`
 * with a valid `Retry-After` (and `reconnect` not `false`): `onReconnect` then gets this error
 * and the client tries again after that delay.
 */
export class ClientStatusError extends ConduitClientError {
  /** The HTTP status code. */
  readonly status: number

  constructor (status: number) {
    super('FST_ERR_CONDUIT_CLIENT_STATUS', 'status', `the server answered with status ${status}`)
    this.status = status
  }
}

/**
 * The server answered 200 with a `Content-Type` other than `text/event-stream`. Like
 * EventSource, the client does not reconnect after this.
 */
export class ClientContentTypeError extends ConduitClientError {
  /** The `Content-Type` header as received; `''` when absent. */
  readonly contentType: string

  constructor (contentType: string) {
    super('FST_ERR_CONDUIT_CLIENT_CONTENT_TYPE', 'content-type',
      `expected Content-Type text/event-stream, got ${contentType === '' ? 'none' : JSON.stringify(contentType)}`)
    this.contentType = contentType
  }
}

/** The connection failed or dropped and `reconnect` is `false`. Carries the fetch error as `cause`. */
export class ClientNetworkError extends ConduitClientError {
  constructor (cause: unknown) {
    super('FST_ERR_CONDUIT_CLIENT_NETWORK', 'network', 'the connection failed and reconnect is disabled', { cause })
  }
}

/** With `events`, an event arrived whose name is not one of its keys. */
export class ClientUndeclaredEventError extends ConduitClientError {
  /** The event's name. */
  readonly event: string

  constructor (event: string) {
    super('FST_ERR_CONDUIT_CLIENT_UNDECLARED_EVENT', 'undeclared-event', `event ${JSON.stringify(event)} is not declared in events`)
    this.event = event
  }
}

/**
 * With `events`, an event's data is not JSON or does not match its schema. Carries the event's
 * name, the JSON pointer of the first mismatch (`''` for the whole value) and TypeBox's reason.
 */
export class ClientInvalidDataError extends ConduitClientError {
  /** The event's name. */
  readonly event: string
  /** Where the data first differs from the schema, such as `/text`. */
  readonly path: string
  /** Why, such as `Expected string`. */
  readonly reason: string

  constructor (event: string, path: string, reason: string) {
    super('FST_ERR_CONDUIT_CLIENT_INVALID_DATA', 'invalid-data',
      `data of event ${JSON.stringify(event)} does not match its schema at "${path}": ${reason}`)
    this.event = event
    this.path = path
    this.reason = reason
  }
}

/**
 * An event was larger than `maxEventSize` bytes (counted as UTF-8, from the end of the
 * previous event, field names and line ends included), or an unfinished one already is. The
 * iteration ends; `lastEventId` stays at the last event yielded. Messages never contain the
 * event.
 */
export class ClientEventTooLargeError extends ConduitClientError {
  /** The limit that was passed, in bytes. */
  readonly maxEventSize: number

  constructor (maxEventSize: number) {
    super('FST_ERR_CONDUIT_CLIENT_EVENT_TOO_LARGE', 'event-too-large', `an event is larger than maxEventSize (${maxEventSize} bytes)`)
    this.maxEventSize = maxEventSize
  }
}

/**
 * No byte arrived for `idleTimeout` milliseconds while the client waited for one (heartbeats
 * count): the connection is taken for dead and closed. `onReconnect` gets this error as
 * `info.error` before the client reconnects with its Last-Event-ID; with `reconnect: false` it
 * is the `cause` of the `ClientNetworkError` thrown.
 */
export class ClientIdleTimeoutError extends ConduitClientError {
  /** The timeout that passed, in milliseconds. */
  readonly idleTimeout: number

  constructor (idleTimeout: number) {
    super('FST_ERR_CONDUIT_CLIENT_IDLE_TIMEOUT', 'idle-timeout', `no byte arrived for ${idleTimeout} ms (idleTimeout)`)
    this.idleTimeout = idleTimeout
  }
}
