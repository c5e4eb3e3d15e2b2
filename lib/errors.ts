import createError from '@fastify/error'

/**
 * Every error fastify-conduit throws or logs. Codes are `FST_ERR_CONDUIT_<REASON>`; tests and
 * users match on `err.code`, never on the message text.
 */

/** A plugin or stream option has the wrong type or value. */
export const InvalidOptionError = createError<[string, string]>(
  'FST_ERR_CONDUIT_INVALID_OPTION',
  'fastify-conduit: option "%s" %s',
  500,
  TypeError
)

/** A message is not an object, or has none of `data`, `event`, `id`, `retry`, `comment`. */
export const InvalidMessageError = createError<[string]>(
  'FST_ERR_CONDUIT_INVALID_MESSAGE',
  'fastify-conduit: invalid message: %s',
  500,
  TypeError
)

/** `event` is not a string, or contains CR or LF (it could forge a field or a second event). */
export const InvalidEventNameError = createError<[string]>(
  'FST_ERR_CONDUIT_INVALID_EVENT_NAME',
  'fastify-conduit: invalid event name: %s',
  500,
  TypeError
)

/** `id` is not a string or finite number, or contains CR, LF or NUL. */
export const InvalidIdError = createError<[string]>(
  'FST_ERR_CONDUIT_INVALID_ID',
  'fastify-conduit: invalid id: %s',
  500,
  TypeError
)

/** `retry` is not a non-negative safe integer. */
export const InvalidRetryError = createError<[string]>(
  'FST_ERR_CONDUIT_INVALID_RETRY',
  'fastify-conduit: invalid retry: %s',
  500,
  TypeError
)

/** `comment` is not a string. */
export const InvalidCommentError = createError<[string]>(
  'FST_ERR_CONDUIT_INVALID_COMMENT',
  'fastify-conduit: invalid comment: %s',
  500,
  TypeError
)

/** `data` cannot be serialized to JSON (a BigInt, a cycle, a function, `undefined` inside JSON). */
export const UnserializableDataError = createError<[string, { cause: unknown }?]>(
  'FST_ERR_CONDUIT_UNSERIALIZABLE_DATA',
  'fastify-conduit: data cannot be serialized: %s',
  500,
  TypeError
)

/** An event's name is not declared in the route's (or channel's) `schema.sse`. */
export const UndeclaredEventError = createError<[string]>(
  'FST_ERR_CONDUIT_UNDECLARED_EVENT',
  'fastify-conduit: event "%s" is not declared in the schema',
  500,
  TypeError
)

/** An event's `data` does not match its schema. Carries `event`, `path` and `reason`. */
export const InvalidEventDataError = createError<[string, string, string]>(
  'FST_ERR_CONDUIT_INVALID_DATA',
  'fastify-conduit: data of event "%s" does not match its schema at "%s": %s',
  500,
  TypeError
)

/** `schema.sse` is not an object of event name -> schema, or a name could not be sent. */
export const InvalidSchemaError = createError<[string, { cause: unknown }?]>(
  'FST_ERR_CONDUIT_INVALID_SCHEMA',
  'fastify-conduit: invalid schema.sse: %s',
  500,
  TypeError
)

/** `reply.sse` got something that is not an iterable, stream, channel or source function. */
export const InvalidSourceError = createError<[string]>(
  'FST_ERR_CONDUIT_INVALID_SOURCE',
  'fastify-conduit: invalid source: %s',
  500,
  TypeError
)

/** `reply.sse` was called on a reply that has already been sent. */
export const ReplyAlreadySentError = createError(
  'FST_ERR_CONDUIT_REPLY_SENT',
  'fastify-conduit: reply.sse() called on a reply that was already sent',
  500
)

/** More than `maxConnections` streams would be open: answered as 503 with Retry-After. */
export const TooManyStreamsError = createError<[number]>(
  'FST_ERR_CONDUIT_TOO_MANY_STREAMS',
  'fastify-conduit: too many open streams (maxConnections is %d)',
  503
)

/** A channel name is empty or not a string, or a channel was re-created with other options. */
export const InvalidChannelError = createError<[string]>(
  'FST_ERR_CONDUIT_INVALID_CHANNEL',
  'fastify-conduit: invalid channel: %s',
  500,
  TypeError
)

/** The bus (memory or Redis) failed to connect, publish or read. Carries `cause`. */
export const BusError = createError<[string, { cause: unknown }?]>(
  'FST_ERR_CONDUIT_BUS',
  'fastify-conduit: bus error: %s',
  500
)

/**
 * A redisBus `publish()` did not get Redis to store the event within `publishTimeout` ms (Redis
 * down, restarting or stalled). The event was not stored and never will be: Redis checks the
 * deadline itself before storing (see the README, "Publishing during an outage"). Carries
 * `cause`: the last error met, if any.
 */
export const PublishTimeoutError = createError<[string, number, string, { cause: unknown }?]>(
  'FST_ERR_CONDUIT_PUBLISH_TIMEOUT',
  'fastify-conduit: publishing to "%s" timed out after %d ms (Redis at %s)',
  503
)

/** The server or the bus is closing: no more publishing or subscribing. */
export const ClosedError = createError<[string]>(
  'FST_ERR_CONDUIT_CLOSED',
  'fastify-conduit: %s is closed',
  503
)

/**
 * A channel subscriber fell further behind than `maxBufferedBytes` and was dropped. A stream is
 * aborted (the client reconnects with Last-Event-ID); an iterator's `next()` rejects with this:
 * resubscribe with the id of the last message it received.
 */
export const SlowSubscriberError = createError<[string, number]>(
  'FST_ERR_CONDUIT_SLOW_SUBSCRIBER',
  'fastify-conduit: a subscriber of channel "%s" fell more than %d bytes behind and was dropped',
  503
)

/** An optional peer dependency (such as `ioredis` for `fastify-conduit/redis`) is not installed. */
export const MissingDependencyError = createError<[string, string, { cause: unknown }?]>(
  'FST_ERR_CONDUIT_MISSING_DEPENDENCY',
  'fastify-conduit: %s needs the "%s" package, which is not installed',
  500
)

/**
 * An onSend hook encoded the event stream (Content-Encoding) through a stream that cannot be
 * flushed per batch (as @fastify/compress's is), so events would reach the client only when
 * the encoder's buffer fills. The request is answered with this error (500) before any event
 * goes out, and it is logged: let fastify-conduit compress event streams itself (its
 * `compress` option, flushed per batch; @fastify/compress then leaves them alone), or exclude
 * `text/event-stream` from that hook's compression.
 */
export const UnflushableEncodingError = createError<[string]>(
  'FST_ERR_CONDUIT_UNFLUSHABLE_ENCODING',
  'fastify-conduit: the event stream is %s-encoded by an onSend hook whose stream cannot be flushed per event, so events would not arrive live; the stream is refused. Use the `compress` option of fastify-conduit (flushed per event; @fastify/compress leaves such streams alone), or exclude text/event-stream from compression (for @fastify/compress: customTypes that do not match it)',
  500
)

/**
 * `reply.sse(source, { resume })`, `app.sse.resumable()` or `app.sse.cancel()` with a bus that
 * cannot hold records (a custom bus without `setState`, `getState` and `expire`).
 */
export const ResumeUnsupportedError = createError(
  'FST_ERR_CONDUIT_RESUME_UNSUPPORTED',
  'fastify-conduit: resumable streams need a bus with setState, getState and expire (memoryBus and redisBus have them)',
  500
)

/**
 * A resumable stream's source yielded more than its record holds (`resume.maxEvents` events or
 * `resume.maxBytes` characters): the source is stopped and the record ends there. Logged where
 * the source runs; readers see a stream that ends.
 */
export const RecordLimitError = createError<[string, number, number]>(
  'FST_ERR_CONDUIT_RECORD_LIMIT',
  'fastify-conduit: the record of resumable stream "%s" is full (maxEvents %d, maxBytes %d); its source is stopped',
  500
)

/** A resumable stream's key is not a non-empty string of at most 512 characters. */
export const InvalidResumeKeyError = createError<[string]>(
  'FST_ERR_CONDUIT_INVALID_RESUME_KEY',
  'fastify-conduit: invalid resume key: %s',
  500,
  TypeError
)
