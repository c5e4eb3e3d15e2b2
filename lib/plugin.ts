import type { FastifyPluginAsync, FastifyReply, FastifySchema } from 'fastify'
import fp from 'fastify-plugin'
import type { Http2ServerRequest, Http2Session } from 'node:http2'
import type { Bus } from './channel/bus.js'
import type { Channel } from './channel/channel.js'
import { memoryBus } from './channel/memory-bus.js'
import { ChannelRegistry, checkBus, checkMaxBufferedBytes } from './channel/registry.js'
import type { ChannelOptions } from './channel/types.js'
import { InvalidOptionError, ReplyAlreadySentError, TooManyStreamsError } from './errors.js'
import { compileRouteEvents } from './schema/compile.js'
import type { EventFormatter, EventSchemas } from './schema/compile.js'
import type { RouteMessage } from './schema/types.js'
import { EventStream } from './stream/event-stream.js'
import { Heartbeats } from './stream/heartbeat.js'
import { isAttachable, kAttach } from './stream/sink.js'
import type { AttachableSource } from './stream/sink.js'
import { openSource } from './stream/source.js'
import type { OpenSource, SourceContext } from './stream/source.js'
import { formatEvent } from './wire/format.js'
import { HTTP1_HEADERS, HTTP2_HEADERS } from './wire/event.js'

/** What to do with an event that fails its schema (or the wire rules). */
export type InvalidEventPolicy = 'close' | 'skip'

/** Options of `reply.sse()`, overriding the plugin's for one stream. */
export interface SSEStreamOptions {
  /**
   * Milliseconds of idleness after which a comment frame keeps the connection alive;
   * `false` disables heartbeats.
   * @default the plugin's `heartbeat` (15000)
   */
  heartbeat?: number | false
  /**
   * Reconnection delay sent once at stream start as `retry: <ms>`.
   * @default the plugin's `retry` (none)
   */
  retry?: number
  /**
   * `'close'` ends the stream at the first invalid event; `'skip'` drops it and goes on.
   * Either way the event is never written and the request log gets the reason.
   * @default the plugin's `onInvalid` ('close')
   */
  onInvalid?: InvalidEventPolicy
}

/** Options of the fastify-conduit plugin. */
export interface FastifyConduitOptions extends SSEStreamOptions {
  /**
   * Open SSE streams allowed at once; one more is answered `503` with `Retry-After`.
   * @default 10000
   */
  maxConnections?: number
  /**
   * What carries channels: `memoryBus()` (this process only) or `redisBus()` from
   * `fastify-conduit/redis` (every instance on one Redis). Its `ready()` runs in `onReady`,
   * so an unreachable bus fails `app.ready()`; its `close()` runs in `onClose`.
   * @default memoryBus()
   */
  bus?: Bus
  /**
   * Bytes a channel subscriber may have waiting (unsent) before it is disconnected as too
   * slow; each channel may set its own. The client reconnects with Last-Event-ID and loses
   * nothing within the channel's history.
   * @default 4194304 (4 MiB)
   */
  maxBufferedBytes?: number
}

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
}

declare module 'fastify' {
  interface FastifySchema {
    /** Event name -> TypeBox schema of that event's `data`; see fastify-conduit. */
    sse?: EventSchemas
  }

  // Augmentation must repeat every type parameter; only SchemaCompiler is used.
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
    sse (source: SSESource<RouteMessage<SchemaCompiler>>, options?: SSEStreamOptions): Promise<void>
  }

  interface FastifyInstance {
    /** fastify-conduit: channels and stream counters. */
    sse: SSEDecorator
  }
}

interface ResolvedOptions {
  heartbeat: number | false
  retry: number | undefined
  onInvalid: InvalidEventPolicy
}

// A Last-Event-ID longer than this is ignored rather than handed to the application: ids are
// short tokens, and an attacker-sized header must not be echoed into logs or queries.
const MAX_LAST_EVENT_ID = 1024

const plugin: FastifyPluginAsync<FastifyConduitOptions> = async function fastifyConduit (app, options) {
  const defaults = resolveStreamOptions(options, { heartbeat: 15_000, retry: undefined, onInvalid: 'close' })
  const maxConnections = checkMaxConnections(options.maxConnections)
  const heartbeats = new Heartbeats()
  // Open streams, with the HTTP/2 session each runs on (to close it at shutdown).
  const open = new Map<EventStream, Http2Session | undefined>()
  const formatters = new WeakMap<EventSchemas, EventFormatter>()
  const stats = { totalStreams: 0, rejectedStreams: 0 }
  const bus = options.bus === undefined ? memoryBus() : checkBus(options.bus)
  const channels = new ChannelRegistry({
    bus,
    maxBufferedBytes: options.maxBufferedBytes === undefined ? 4 * 1024 * 1024 : checkMaxBufferedBytes(options.maxBufferedBytes),
    log: app.log,
    compile: formatterOf
  })

  // Compile at registration, so a bad schema fails startup rather than the first request.
  app.addHook('onRoute', (route) => {
    const schemas = (route.schema as FastifySchema | undefined)?.sse
    if (schemas !== undefined) formatterOf(schemas)
  })

  function formatterOf (schemas: EventSchemas): EventFormatter {
    let format = formatters.get(schemas)
    if (format === undefined) {
      format = compileRouteEvents(schemas)
      formatters.set(schemas, format)
    }
    return format
  }

  app.decorate('sse', {
    stats: (): SSEStats => {
      let queuedBytes = 0
      for (const stream of open.keys()) queuedBytes += stream.queued
      return { openStreams: open.size, ...stats, ...channels.counters, queuedBytes }
    },
    channel: (name: string, channelOptions?: ChannelOptions) => channels.channel(name, channelOptions)
  } as SSEDecorator)

  app.decorateReply('sse', function sse (this: FastifyReply, source: unknown, streamOptions?: SSEStreamOptions): Promise<void> {
    const reply = this
    if (reply.sent) throw new ReplyAlreadySentError()
    const settings = streamOptions === undefined ? defaults : resolveStreamOptions(streamOptions, defaults)
    if (open.size >= maxConnections) {
      stats.rejectedStreams++
      // Clients should come back later; EventSource itself stops on a 503, a proxy may retry.
      reply.header('retry-after', '5')
      reply.send(new TooManyStreamsError(maxConnections))
      return Promise.resolve()
    }
    const request = reply.request
    const schemas = (reply.routeOptions.schema as FastifySchema | undefined)?.sse
    const lastEventId = request.headers['last-event-id']
    const stream = new EventStream({
      format: schemas === undefined ? formatEvent : formatterOf(schemas),
      log: request.log,
      onInvalid: settings.onInvalid,
      heartbeat: settings.heartbeat === false ? undefined : heartbeats.ticker(settings.heartbeat),
      retry: settings.retry,
      lastEventId: typeof lastEventId === 'string' && lastEventId.length <= MAX_LAST_EVENT_ID ? decodeHeader(lastEventId) : undefined,
      onEnd: () => open.delete(stream)
    })
    let run: () => Promise<void>
    if (isAttachable(source)) {
      run = () => source[kAttach](stream).finally(() => stream.stop())
    } else {
      let opened: OpenSource<unknown>
      try {
        opened = openSource<unknown>(source, () => stream.context)
      } catch (err) {
        stream.destroy()
        throw err
      }
      run = () => stream.run(opened)
    }
    open.set(stream, (request.raw as unknown as Partial<Http2ServerRequest>).stream?.session)
    stats.totalStreams++
    // Status 200 always: EventSource gives up on any other. Headers already set (CORS and
    // the like) are kept; ours only add to them.
    reply.code(200).headers(request.raw.httpVersionMajor === 2 ? HTTP2_HEADERS : HTTP1_HEADERS)
    reply.send(stream)
    return run()
  })

  // End every stream before the server stops listening, so close() does not wait on them.
  // An HTTP/2 session outlives its streams and Fastify waits for it: a GOAWAY lets it finish
  // what is in flight and close.
  app.addHook('preClose', (done) => {
    for (const [stream, session] of open) {
      stream.stop()
      session?.close()
    }
    done()
  })

  // The bus connects before the server listens: an unreachable Redis fails app.ready().
  app.addHook('onReady', () => bus.ready(app.log))
  app.addHook('onClose', async () => {
    channels.close()
    await bus.close()
  })
}

function resolveStreamOptions (options: SSEStreamOptions, defaults: ResolvedOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object')
  const { heartbeat = defaults.heartbeat, retry = defaults.retry, onInvalid = defaults.onInvalid } = options
  if (heartbeat !== false && !(Number.isSafeInteger(heartbeat) && heartbeat > 0)) {
    throw new InvalidOptionError('heartbeat', 'must be a positive integer of milliseconds or false')
  }
  if (retry !== undefined && !(Number.isSafeInteger(retry) && retry >= 0)) {
    throw new InvalidOptionError('retry', 'must be a non-negative integer of milliseconds')
  }
  if (onInvalid !== 'close' && onInvalid !== 'skip') {
    throw new InvalidOptionError('onInvalid', "must be 'close' or 'skip'")
  }
  return { heartbeat, retry, onInvalid }
}

// EventSource sends Last-Event-ID as UTF-8 bytes; Node hands header values over as Latin-1.
const NON_ASCII = /[\u0080-\uffff]/
function decodeHeader (value: string): string {
  return NON_ASCII.test(value) ? Buffer.from(value, 'latin1').toString('utf8') : value
}

function checkMaxConnections (value: unknown): number {
  if (value === undefined) return 10_000
  if (value === Infinity || (typeof value === 'number' && Number.isSafeInteger(value) && value > 0)) return value
  throw new InvalidOptionError('maxConnections', 'must be a positive integer or Infinity')
}

/**
 * The fastify-conduit plugin: `reply.sse(source)` on every route, `schema.sse` compiled per
 * route, `app.sse` for channels and counters.
 *
 * @example
 * await app.register(fastifyConduit, { heartbeat: 15_000, retry: 3_000 })
 */
const fastifyConduit = fp(plugin, { fastify: '5.x', name: 'fastify-conduit' })
export default fastifyConduit
