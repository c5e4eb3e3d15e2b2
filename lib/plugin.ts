import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifySchema } from 'fastify'
import fp from 'fastify-plugin'
import type { Http2ServerRequest, Http2Session } from 'node:http2'
import { Readable } from 'node:stream'
import { memoryBus } from './channel/memory-bus.js'
import { ChannelRegistry } from './channel/registry.js'
import type { ChannelOptions } from './channel/types.js'
import { ReplyAlreadySentError, TooManyStreamsError } from './errors.js'
import { compileOptions } from './options.js'
import { compileRouteEvents } from './schema/compile.js'
import type { EventFormatter, EventSchemas } from './schema/compile.js'
import { sharedReferences } from './schema/shared.js'
import { ServerEventStream } from './stream/server-event-stream.js'
import { Heartbeats } from './stream/heartbeat.js'
import { isAttachable, kAttach } from './stream/sink.js'
import { isResponseClosed, whenResponseClosed } from './stream/response.js'
import { closeIterator, iterate, openSource } from './stream/source.js'
import type { OpenSource } from './stream/source.js'
import { FastifyConduitOptionsSchema, SSEStreamOptionsSchema } from './types.js'
import type { FastifyConduitOptions, InvalidEventPolicy, SSEDecorator, SSEStats, SSEStreamOptions } from './types.js'
import { formatEvent } from './format/format.js'
import { HTTP1_HEADERS, HTTP2_HEADERS } from './wire/headers.js'

interface ResolvedOptions {
  heartbeat: number | false
  retry: number | undefined
  onInvalid: InvalidEventPolicy
}

// A Last-Event-ID longer than this is ignored rather than handed to the application: ids are
// short tokens, and an attacker-sized header must not be echoed into logs or queries.
const MAX_LAST_EVENT_ID = 1024

const checkPluginOptions = compileOptions('options', FastifyConduitOptionsSchema)
const checkStreamOptions = compileOptions('options', SSEStreamOptionsSchema)
const { properties: DEFAULTS } = FastifyConduitOptionsSchema

const plugin: FastifyPluginAsync<FastifyConduitOptions> = async function fastifyConduit (app, pluginOptions) {
  const options = checkPluginOptions(pluginOptions)
  const defaults = resolveStreamOptions(options, {
    heartbeat: DEFAULTS.heartbeat.default,
    retry: undefined,
    onInvalid: DEFAULTS.onInvalid.default
  })
  const maxConnections: number = options.maxConnections ?? DEFAULTS.maxConnections.default
  const closeGracePeriod: number = options.closeGracePeriod ?? DEFAULTS.closeGracePeriod.default
  const heartbeats = new Heartbeats()
  // Open streams, with the HTTP/2 session each runs on (to close it at shutdown).
  const open = new Map<ServerEventStream, Http2Session | undefined>()
  const formatters = new WeakMap<EventSchemas, EventFormatter | WeakMap<FastifyInstance, EventFormatter>>()
  const stats = { totalStreams: 0, rejectedStreams: 0 }
  const bus = options.bus ?? memoryBus()
  const channels = new ChannelRegistry({
    bus,
    maxBufferedBytes: options.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes.default,
    log: app.log,
    compile: formatterOf
  })

  // Compile at registration, so a bad schema fails startup rather than the first request.
  // `this` is the instance the route is registered on: its shared schemas are the route's.
  app.addHook('onRoute', function (this: FastifyInstance, route) {
    const schemas = (route.schema as FastifySchema | undefined)?.sse
    if (schemas !== undefined) formatterOf(schemas, this)
  })

  // Shared schemas belong to an encapsulation context: event schemas that $ref them are
  // compiled once per instance that has routes with them, the others once.
  function formatterOf (schemas: EventSchemas, server: FastifyInstance = app): EventFormatter {
    let format = formatters.get(schemas)
    if (typeof format === 'function') return format
    if (format === undefined) {
      if (sharedReferences(schemas, server.getSchemas()) === undefined) {
        const compiled = compileRouteEvents(schemas)
        formatters.set(schemas, compiled)
        return compiled
      }
      format = new WeakMap()
      formatters.set(schemas, format)
    }
    let compiled = format.get(server)
    if (compiled === undefined) {
      compiled = compileRouteEvents(schemas, server.getSchemas())
      format.set(server, compiled)
    }
    return compiled
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
    // Every failure surfaces one way: the promise rejects (a handler that returns or awaits it
    // gets Fastify's error reply), never a synchronous throw.
    try {
      return startStream(this, source, streamOptions)
    } catch (err) {
      return Promise.reject(err)
    }
  })

  function startStream (reply: FastifyReply, source: unknown, streamOptions: SSEStreamOptions | undefined): Promise<void> {
    if (reply.sent) throw new ReplyAlreadySentError()
    const settings = streamOptions === undefined ? defaults : resolveStreamOptions(checkStreamOptions(streamOptions), defaults)
    const request = reply.request
    const raw = reply.raw
    if (request.method === 'HEAD' || isResponseClosed(raw)) {
      // HEAD (which Fastify answers for every GET route) gets the stream's head and nothing
      // runs; a client gone before the handler got here gets nothing. Either way the source
      // is closed unstarted: no stream is held, none counts against maxConnections.
      const discarded = discardSource(source, request.log)
      if (isResponseClosed(raw)) return discarded
      setStreamHeaders(reply)
      reply.send(Readable.from([]))
      const closed = whenResponseClosed(raw)
      return discarded.then(() => closed)
    }
    if (open.size >= maxConnections) {
      stats.rejectedStreams++
      // Clients should come back later; EventSource itself stops on a 503, a proxy may retry.
      reply.header('retry-after', '5')
      reply.send(new TooManyStreamsError(maxConnections))
      return whenResponseClosed(raw)
    }
    const schemas = (reply.routeOptions.schema as FastifySchema | undefined)?.sse
    const lastEventId = request.headers['last-event-id']
    const stream: ServerEventStream = new ServerEventStream({
      format: schemas === undefined ? formatEvent : formatterOf(schemas, reply.server),
      log: request.log,
      onInvalid: settings.onInvalid,
      heartbeat: settings.heartbeat === false ? undefined : heartbeats.ticker(settings.heartbeat),
      retry: settings.retry,
      lastEventId: typeof lastEventId === 'string' && lastEventId.length <= MAX_LAST_EVENT_ID ? decodeHeader(lastEventId) : undefined,
      onClose: () => open.delete(stream)
    }, raw)
    let running: Promise<void>
    if (isAttachable(source)) {
      running = source[kAttach](stream).finally(() => stream.stop())
    } else {
      let opened: OpenSource<unknown>
      try {
        opened = openSource<unknown>(source, () => stream.context)
      } catch (err) {
        stream.destroy()
        throw err
      }
      running = stream.run(opened)
    }
    open.set(stream, (request.raw as unknown as Partial<Http2ServerRequest>).stream?.session)
    stats.totalStreams++
    setStreamHeaders(reply)
    reply.send(stream)
    // Settles once the source was closed and the response is over: before that Fastify still
    // has a reply in flight, and a handler that returned or awaited this must not finish early.
    return stream.settled(running)
  }

  // End every stream before the server stops listening: what is batched is written and each
  // response ends. A client that does not read keeps its connection (and close()) waiting, so
  // after closeGracePeriod what is left is destroyed. An HTTP/2 session outlives its streams
  // and Fastify waits for it: a GOAWAY lets it finish what is in flight and close.
  app.addHook('preClose', async () => {
    // Acknowledged events first: a publish() that resolved before close() reaches this
    // instance's subscribers before their streams end. Bounded: a bus that cannot deliver
    // (Redis down) does not hold the close past the grace period.
    await boundedBy(channels.flush().catch((err: unknown) => {
      app.log.warn({ err }, 'fastify-conduit: could not deliver pending channel events before closing')
    }), closeGracePeriod)
    const closing = [...open]
    if (closing.length === 0) return
    for (const [stream, session] of closing) {
      stream.stop()
      session?.close()
    }
    const allClosed = Promise.all(closing.map(([stream]) => stream.responseClosed()))
    await boundedBy(allClosed, closeGracePeriod)
    for (const [stream, session] of closing) {
      if (stream.isResponseClosed) continue
      stream.abort()
      // A GOAWAY'd session still waits to write what it queued for the stalled client, and
      // Fastify waits for the session: it goes too.
      session?.destroy()
    }
    // A destroyed response closes on the next turn; then every stream has let go.
    await allClosed
  })

  // The bus connects before the server listens: an unreachable Redis fails app.ready().
  app.addHook('onReady', () => bus.ready(app.log))
  app.addHook('onClose', async () => {
    channels.close()
    await bus.close()
  })
}

/** Resolves when `promise` settles or after `ms`, whichever comes first. */
async function boundedBy (promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([promise, new Promise((resolve) => { timer = setTimeout(resolve, ms) })])
  clearTimeout(timer)
}

/** Checked options over `defaults`: an option given as `undefined` is not given. */
function resolveStreamOptions (options: SSEStreamOptions, defaults: ResolvedOptions): ResolvedOptions {
  const { heartbeat = defaults.heartbeat, retry = defaults.retry, onInvalid = defaults.onInvalid } = options
  return { heartbeat, retry, onInvalid }
}

// EventSource sends Last-Event-ID as UTF-8 bytes; Node hands header values over as Latin-1.
const NON_ASCII = /[\u0080-\uffff]/
function decodeHeader (value: string): string {
  return NON_ASCII.test(value) ? Buffer.from(value, 'latin1').toString('utf8') : value
}

/**
 * Sets the event-stream headers on the reply. Headers the application already set are kept
 * (Cache-Control included), except Content-Type, which EventSource requires to be
 * text/event-stream; a Content-Length cannot describe a stream and is removed. Status 200
 * always: EventSource gives up on any other.
 */
function setStreamHeaders (reply: FastifyReply): void {
  const request = reply.request
  // A client that asked for `Connection: close` gets it (Node then closes after the stream).
  const headers = request.raw.httpVersionMajor === 2 || /\bclose\b/i.test(request.headers.connection ?? '') ? HTTP2_HEADERS : HTTP1_HEADERS
  for (const name in headers) {
    if (name === 'content-type' || !reply.hasHeader(name)) reply.header(name, headers[name])
  }
  reply.removeHeader('content-length')
  reply.code(200)
}

/**
 * Closes a source that will not be streamed, without starting it: a source function is not
 * called, a Readable is destroyed, an iterator is returned (a generator that never started
 * has no `finally` to run, and is done). Not a source: throws as for a stream.
 */
function discardSource (source: unknown, log: FastifyBaseLogger): Promise<void> {
  if (typeof source === 'function' || isAttachable(source)) return Promise.resolve()
  if (source instanceof Readable) {
    source.destroy()
    return Promise.resolve()
  }
  return closeIterator(iterate(source).iterator, log)
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
