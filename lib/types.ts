import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import type { Bus } from './channel/bus.js'
import type { Channel } from './channel/channel.js'
import type { ChannelOptions, Published } from './channel/types.js'
import type { MergeableChannel, MergedChannels, MergedMessage } from './channel/merged.js'
import { History, Implements, MaxBufferedBytes, Milliseconds } from './options.js'
import type { EventSchemas } from './schema/compile.js'
import type { ReplyMessage, RouteEvents } from './schema/types.js'
import type { AttachableSource } from './stream/sink.js'
import type { ResumableRecord } from './resume/records.js'
import type { SourceContext } from './stream/source.js'

// The public types of the plugin and its additions to Fastify's (reply.sse, app.sse,
// schema.sse). The options types are Static<> of their schemas, which plugin.ts checks.

export const InvalidEventPolicySchema = Type.Union([Type.Literal('close'), Type.Literal('skip')], { default: 'close', errorMessage: "must be 'close' or 'skip'" })
/** What to do with an event that fails its schema (or the wire rules). */
export type InvalidEventPolicy = Static<typeof InvalidEventPolicySchema>

export const CompressOptionsSchema = Type.Object({
  /**
   * The content codings offered, most preferred first; the client's `Accept-Encoding` picks
   * among them (its highest weight wins, a tie goes to this order).
   * @default ['gzip', 'br', 'deflate']
   */
  encodings: Type.Optional(Type.Array(Type.Union([Type.Literal('br'), Type.Literal('gzip'), Type.Literal('deflate')]),
    { minItems: 1, uniqueItems: true, errorMessage: "must be a non-empty array of distinct 'br', 'gzip' and 'deflate'" })),
  /**
   * zlib compression level of `gzip` and `deflate`, 1 (fastest) to 9 (smallest).
   * @default 6
   */
  level: Type.Optional(Type.Integer({ minimum: 1, maximum: 9, default: 6, errorMessage: 'must be an integer from 1 to 9' })),
  /**
   * Brotli quality of `br`, 0 (fastest) to 11 (smallest).
   * @default 5
   */
  quality: Type.Optional(Type.Integer({ minimum: 0, maximum: 11, default: 5, errorMessage: 'must be an integer from 0 to 11' }))
}, { additionalProperties: false })
/** The `compress` option as an object: see {@link CompressOptionsSchema}. */
export type CompressOptions = Static<typeof CompressOptionsSchema>

export const SSEStreamOptionsSchema = Type.Object({
  /**
   * Milliseconds of idleness after which a comment frame keeps the connection alive;
   * `false` disables heartbeats.
   * @default the plugin's `heartbeat` (15000)
   */
  heartbeat: Type.Optional(Type.Union([
    Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    Type.Literal(false)
  ], { default: 15_000, errorMessage: 'must be a positive integer of milliseconds or false' })),
  /**
   * Reconnection delay sent once at stream start as `retry: <ms>`.
   * @default the plugin's `retry` (none)
   */
  retry: Type.Optional(Milliseconds()),
  /**
   * `'close'` ends the stream at the first invalid event; `'skip'` drops it and goes on.
   * Either way the event is never written and the request log gets the reason.
   * @default the plugin's `onInvalid` ('close')
   */
  onInvalid: Type.Optional(InvalidEventPolicySchema),
  /**
   * Compresses the stream with the coding the client's `Accept-Encoding` prefers (gzip,
   * Brotli or deflate, from `node:zlib`), flushed after every batch of events and every
   * heartbeat so that each event arrives at once; `Vary: Accept-Encoding` is added. A client
   * that accepts none of them gets the stream uncompressed. `true` compresses with the
   * plugin's settings (or the defaults); an object sets `encodings`, `level` and `quality`,
   * over the plugin's. @fastify/compress leaves a stream compressed so alone. See
   * "Compression" in the README.
   * @default the plugin's `compress` (false)
   */
  compress: Type.Optional(Type.Union([Type.Boolean(), CompressOptionsSchema], {
    default: false,
    errorMessage: 'must be true, false or an object with encodings, level and/or quality'
  }))
})

export const ResumeOptionsSchema = Type.Object({
  /**
   * Names the stream: the first request with a key (on any instance sharing the bus) runs the
   * source; every request with it reads the record. 1 to 512 characters; put what identifies
   * the work in it (`chat:<conversation>:<turn>`), and scope it to the user.
   */
  key: Type.String({ minLength: 1, maxLength: 512, errorMessage: 'must be a string of 1 to 512 characters' }),
  /**
   * Milliseconds the record is kept after the source ended; a request for the key then gets the
   * whole record. After it, the key is free: a request with it runs the source anew.
   * @default 600000 (10 minutes)
   */
  ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1, default: 600_000, errorMessage: 'must be a positive integer of milliseconds (at most 2^31 - 1)' })),
  /**
   * Events a record holds; a source that yields more is stopped and the record ends there
   * (logged as FST_ERR_CONDUIT_RECORD_LIMIT).
   * @default 10000
   */
  maxEvents: Type.Optional(History({ default: 10_000, errorMessage: 'must be a positive integer of events' })),
  /**
   * Characters of formatted events a record holds (about bytes for ASCII); beyond it, as for
   * `maxEvents`.
   * @default 16777216 (16 MiB)
   */
  maxBytes: Type.Optional(MaxBufferedBytes({ default: 16 * 1024 * 1024 }))
}, { errorMessage: 'must be an object with a key' })
/** `reply.sse(source, { resume })`: see {@link ResumeOptionsSchema}. */
export type ResumeOptions = Static<typeof ResumeOptionsSchema>

/** Options of `reply.sse()`, overriding the plugin's for one stream. */
export type SSEStreamOptions = Static<typeof SSEStreamOptionsSchema>

export const SSEReplyOptionsSchema = Type.Object({
  ...SSEStreamOptionsSchema.properties,
  /**
   * Makes the stream resumable: its source runs once per key, outlives the connection, and is
   * recorded on the bus; every request with the key (on any instance) reads the record after
   * its Last-Event-ID, then live. See "Resumable streams" in the README.
   * @default none: the source runs for this request and stops when its client goes
   */
  resume: Type.Optional(ResumeOptionsSchema)
})
/** Options of `reply.sse(source, options)`. */
export type SSEReplyOptions = Static<typeof SSEReplyOptionsSchema>

export const FastifyConduitOptionsSchema = Type.Object({
  ...SSEStreamOptionsSchema.properties,
  /**
   * Open SSE streams allowed at once; one more is answered `503` with `Retry-After`.
   * @default 10000
   */
  maxConnections: Type.Optional(Type.Union([
    Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    Type.Literal(Infinity)
  ], { default: 10_000, errorMessage: 'must be a positive integer or Infinity' })),
  /**
   * Milliseconds `app.close()` gives open streams to hand their last bytes to clients. At
   * close every stream ends cleanly (what is batched is written); a response still not done
   * after this long (a client that stopped reading) has its connection destroyed, so
   * `app.close()` resolves within about this bound whatever the clients do. `0` destroys at once.
   * @default 1000
   */
  closeGracePeriod: Type.Optional(Milliseconds({ default: 1000 })),
  /**
   * What carries channels: `memoryBus()` (this process only) or `redisBus()` from
   * `fastify-conduit/redis` (every instance on one Redis). Its `ready()` runs in `onReady`,
   * so an unreachable bus fails `app.ready()`; its `close()` runs in `onClose`.
   * @default memoryBus()
   */
  bus: Type.Optional(Implements<Bus>(['ready', 'publish', 'listen', 'replay', 'compare', 'close'], { history: History() },
    { errorMessage: 'must be a bus such as memoryBus() or redisBus()' })),
  /**
   * Bytes a channel subscriber may have waiting (unsent) before it is disconnected as too
   * slow; each channel may set its own. The client reconnects with Last-Event-ID and loses
   * nothing within the channel's history.
   * @default 4194304 (4 MiB)
   */
  maxBufferedBytes: Type.Optional(MaxBufferedBytes({ default: 4 * 1024 * 1024 })),
  /**
   * The query parameter that carries a resume cursor when the request has no `Last-Event-ID`
   * header: EventSource cannot set headers, so after a page reload an application passes the
   * last id it stored as `?<name>=<id>`. The header wins when both are present (EventSource's
   * own reconnections send it, newer than the URL's). Like the header, a value longer than
   * 1024 characters is ignored. Source functions and channels see it as `lastEventId`.
   * @default none: only the header is read
   */
  lastEventIdQuery: Type.Optional(Type.String({ minLength: 1, maxLength: 256, errorMessage: 'must be a query parameter name (a non-empty string)' }))
})
/** Options of the fastify-conduit plugin. */
export type FastifyConduitOptions = Static<typeof FastifyConduitOptionsSchema>

/**
 * Anything `reply.sse` streams from: an async iterable or iterable of messages (generators,
 * arrays), an object-mode Readable of messages, a function of `{ signal, lastEventId }`
 * returning one of those, or a channel (which brings its own schema).
 */
export type SSESource<Message> =
  | AttachableSource
  | AsyncIterable<Message>
  | Iterable<Message>
  | ((context: SourceContext) => AsyncIterable<Message> | Iterable<Message>)

/**
 * What the source of a resumable stream (`reply.sse(source, { resume })`) may yield: the
 * events `Message` allows, with no `id` (the bus assigns ids to the record), no `retry` and no
 * `comment` (a record carries events only), and no control message. At runtime such a message
 * is an invalid event (FST_ERR_CONDUIT_INVALID_ID, FST_ERR_CONDUIT_INVALID_MESSAGE), handled
 * by `onInvalid`.
 */
export type ResumableMessage<Message> = Published<Exclude<Message, { event?: never, data?: never }>>

/** Counters of one Fastify instance's streams. */
export interface SSEStats {
  /** Streams open now. */
  openStreams: number
  /** Streams opened since start. */
  totalStreams: number
  /** Requests answered 503 because `maxConnections` streams were open. */
  rejectedStreams: number
  /** Events this instance's channels published (accepted by the bus). */
  publishedEvents: number
  /** Channel events delivered to subscribers here: one per event per subscriber, replays included. */
  sentEvents: number
  /** Channel subscribers dropped for falling more than `maxBufferedBytes` behind. */
  slowDisconnects: number
  /** Bytes (approximately) written to open streams and not yet taken by their sockets. */
  queuedBytes: number
}

/** `app.sse`. */
export interface SSEDecorator {
  /** Counters of this instance's streams and channels. */
  stats (): SSEStats
  /**
   * The channel `name`, created on first use; the same name returns the same channel (asking
   * with other options is an error). Create channels at any time: at startup, per room, per
   * user. With `schema`, `publish` accepts only the declared events and payloads.
   *
   * @example
   * const news = app.sse.channel('news', { schema: { headline: Headline }, history: 1000 })
   * app.get('/news', (request, reply) => reply.sse(news))
   * await news.publish({ event: 'headline', data: { title: 'SSE ships' } })
   */
  channel<Events extends EventSchemas> (name: string, options: ChannelOptions<Events> & { schema: Events }): Channel<Events>
  channel (name: string, options?: ChannelOptions<undefined>): Channel
  /**
   * Several channels (or `where()` selections) on one stream: `reply.sse(merged)` delivers each
   * channel's events with their own event names, under one opaque Last-Event-ID that resumes
   * every channel where it stopped, on any instance. 1 to 32 channels, each at most once;
   * anything else throws FST_ERR_CONDUIT_INVALID_CHANNEL. Cheap to make: one per request.
   *
   * @example
   * app.get('/dashboard', (request, reply) =>
   *   reply.sse(app.sse.merge([news, alerts.where((message) => message.data.team === request.user.team)])))
   */
  merge<const Sources extends readonly MergeableChannel[]> (channels: Sources): MergedChannels<MergedMessage<Sources>>
  /**
   * The record of resumable stream `key`, to stream with `reply.sse()`: it never starts a
   * source. A key with no record (never started, or expired) is answered `204 No Content`,
   * on which EventSource stops.
   *
   * @example
   * app.get('/chat/:id', (request, reply) => reply.sse(app.sse.resumable(`chat:${request.params.id}`)))
   */
  resumable (key: string): ResumableRecord
  /**
   * Stops resumable stream `key`'s source, on whatever instance it runs: its `signal` aborts, the
   * record ends (readers' streams end) and is kept its `ttl`. Resolves true when a source was
   * running, false when none was. Rejects with FST_ERR_CONDUIT_BUS when the bus fails.
   *
   * @example
   * await app.sse.cancel(`chat:${id}`)
   */
  cancel (key: string): Promise<boolean>
}

declare module 'fastify' {
  interface FastifySchema {
    /** Event name -> TypeBox schema of that event's `data`; see fastify-conduit. */
    sse?: EventSchemas
  }

  interface RouteGenericInterface {
    /**
     * fastify-conduit: the route's events when its generics are given explicitly (which leaves
     * `schema.sse` untyped): event name -> TypeBox schema of its `data` (or the `data` type).
     *
     * @example
     * const events = { tick: Tick }
     * app.get<{ Querystring: Query, SSE: typeof events }>('/ticks', { schema: { sse: events } }, handler)
     */
    SSE?: RouteEvents
  }

  // Augmentation must repeat every type parameter; RouteGeneric and SchemaCompiler are used.
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  interface FastifyReply<RouteGeneric, RawServer, RawRequest, RawReply, ContextConfig, SchemaCompiler, TypeProvider, ReplyType> {
    /**
     * Streams Server-Sent Events from `source` until it ends, the client goes away or the
     * server closes; resolves then (after the source's `finally` ran). The response head is
     * sent at once. With `schema.sse` on the route, every event is checked against its
     * schema and serialized by a serializer compiled from it.
     *
     * @example
     * app.get('/chat', { schema: { sse: { token: Token } } }, (request, reply) =>
     *   reply.sse(async function * ({ signal, lastEventId }) {
     *     yield { event: 'token', id: 1, data: { text: 'Hello' } }
     *   }))
     */
    sse (source: SSESource<ReplyMessage<RouteGeneric, SchemaCompiler>>, options?: SSEStreamOptions & { resume?: undefined }): Promise<void>
    /**
     * A resumable stream (see "Resumable streams" in the README): `source` runs once per
     * `resume.key`, outliving the connection, into a record on the bus; its events carry no
     * `id` (the bus assigns ids), `retry` or `comment` ({@link ResumableMessage}).
     *
     * @example
     * app.post('/chat', { schema: { sse: { token: Token } } }, (request, reply) =>
     *   reply.sse(({ signal }) => generate(request.body, signal), { resume: { key: `chat:${request.body.id}` } }))
     */
    sse (source: SSESource<ResumableMessage<ReplyMessage<RouteGeneric, SchemaCompiler>>>, options?: SSEReplyOptions): Promise<void>
  }

  interface FastifyInstance {
    /** fastify-conduit: channels and stream counters. */
    sse: SSEDecorator
  }
}
