import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, FastifySchema } from 'fastify'
import fp from 'fastify-plugin'
import type { Http2ServerRequest, Http2Session } from 'node:http2'
import { Readable } from 'node:stream'
import { EPOCH_NAME, PRESENCE_PREFIX } from './channel/bus.js'
import { Channel } from './channel/channel.js'
import { memoryBus } from './channel/memory-bus.js'
import { MergedChannels } from './channel/merged.js'
import { noop } from './channel/noop.js'
import { ChannelRegistry } from './channel/registry.js'
import type { ChannelOptions } from './channel/types.js'
import { InvalidChannelError, InvalidResumeKeyError, ReplyAlreadySentError, TooManyStreamsError } from './errors.js'
import { observeStream } from './diagnostics.js'
import { compileOptions } from './options.js'
import { documentEventStream } from './openapi.js'
import { compileRouteEvents } from './schema/compile.js'
import type { EventFormatter, EventSchemas } from './schema/compile.js'
import { sharedReferences } from './schema/shared.js'
import { ServerEventStream } from './stream/server-event-stream.js'
import { COMPRESS_DEFAULTS, compressStream, negotiateEncoding, varyOnAcceptEncoding } from './stream/compress.js'
import type { CompressSettings } from './stream/compress.js'
import { Heartbeats } from './stream/heartbeat.js'
import { isAttachable, kAttach } from './stream/sink.js'
import { isResponseClosed, whenResponseClosed } from './stream/response.js'
import { closeIterator, iterate, openSource } from './stream/source.js'
import type { OpenSource } from './stream/source.js'
import { FastifyConduitOptionsSchema, ResumeOptionsSchema, SSEReplyOptionsSchema } from './types.js'
import type { CompressOptions, FastifyConduitOptions, InvalidEventPolicy, ResumeOptions, SSEDecorator, SSEReplyOptions, SSEStats } from './types.js'
import { RECORD_PREFIX, ResumableRecord, ResumableRecords } from './resume/records.js'
import type { StreamEndReason } from './diagnostics.js'
import { formatEvent } from './format/format.js'
import { HTTP1_HEADERS, HTTP2_HEADERS } from './wire/headers.js'

interface ResolvedOptions {
  heartbeat: number | false
  retry: number | undefined
  onInvalid: InvalidEventPolicy
  /** Undefined: not compressed. */
  compress: CompressSettings | undefined
}

// A Last-Event-ID longer than this is ignored rather than handed to the application: ids are
// short tokens, and an attacker-sized header must not be echoed into logs or queries.
const MAX_LAST_EVENT_ID = 1024

const checkPluginOptions = compileOptions('options', FastifyConduitOptionsSchema)
const checkStreamOptions = compileOptions('options', SSEReplyOptionsSchema)
const { properties: RESUME_DEFAULTS } = ResumeOptionsSchema
const { properties: DEFAULTS } = FastifyConduitOptionsSchema

const plugin: FastifyPluginAsync<FastifyConduitOptions> = async function fastifyConduit (app, pluginOptions) {
  const options = checkPluginOptions(pluginOptions)
  const defaults = resolveStreamOptions(options, {
    heartbeat: DEFAULTS.heartbeat.default,
    retry: undefined,
    onInvalid: DEFAULTS.onInvalid.default,
    compress: undefined
  })
  const maxConnections: number = options.maxConnections ?? DEFAULTS.maxConnections.default
  const closeGracePeriod: number = options.closeGracePeriod ?? DEFAULTS.closeGracePeriod.default
  const lastEventIdQuery = options.lastEventIdQuery
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
  const records = new ResumableRecords({
    bus,
    log: app.log,
    channel: (name) => new Channel({
      name,
      bus,
      format: undefined,
      // A record's channel never publishes with its own history: every append says its own.
      history: 1,
      maxBufferedBytes: options.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes.default,
      counters: channels.counters,
      log: app.log,
      onClose: noop,
      record: true
    })
  })

  // Compile at registration, so a bad schema fails startup rather than the first request.
  // `this` is the instance the route is registered on: its shared schemas are the route's.
  app.addHook('onRoute', function (this: FastifyInstance, route) {
    const schemas = (route.schema as FastifySchema | undefined)?.sse
    if (schemas === undefined) return
    formatterOf(schemas, this)
    // A 200 text/event-stream response describing the events, for @fastify/swagger (and any
    // tool that reads route schemas) to document; never used on the wire.
    route.schema = documentEventStream(route.schema as Parameters<typeof documentEventStream>[0])
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
      // A channel's broadcast Buffer queued in many streams is held once: counted once.
      const shared = new Set<Uint8Array>()
      let queuedBytes = 0
      for (const stream of open.keys()) queuedBytes += stream.heldBytes(shared)
      for (const bytes of shared) queuedBytes += bytes.length
      return { openStreams: open.size, ...stats, ...channels.counters, queuedBytes }
    },
    channel: (name: string, channelOptions?: ChannelOptions) => {
      if (typeof name === 'string' && name.startsWith(RECORD_PREFIX)) throw new InvalidChannelError(`names starting with "${RECORD_PREFIX}" are reserved for resumable streams`)
      if (typeof name === 'string' && name.startsWith(PRESENCE_PREFIX)) throw new InvalidChannelError(`names starting with "${PRESENCE_PREFIX}" are reserved for presence`)
      if (name === EPOCH_NAME) throw new InvalidChannelError(`the name "${EPOCH_NAME}" is reserved for the bus`)
      return channels.channel(name, channelOptions)
    },
    merge: (sources: readonly unknown[]) => new MergedChannels(sources),
    resumable: (key: string) => new ResumableRecord(checkResumeKey(key), records),
    cancel: async (key: string) => records.cancel(checkResumeKey(key))
  } as SSEDecorator)

  app.decorateReply('sse', function sse (this: FastifyReply, source: unknown, streamOptions?: SSEReplyOptions): Promise<void> {
    // Every failure surfaces one way: the promise rejects (a handler that returns or awaits it
    // gets Fastify's error reply), never a synchronous throw.
    try {
      return startStream(this, source, streamOptions)
    } catch (err) {
      return Promise.reject(err)
    }
  })

  function startStream (reply: FastifyReply, source: unknown, streamOptions: SSEReplyOptions | undefined): Promise<void> {
    if (reply.sent) throw new ReplyAlreadySentError()
    const checked = streamOptions === undefined ? undefined : checkStreamOptions(streamOptions)
    const settings = checked === undefined ? defaults : resolveStreamOptions(checked, defaults)
    const resume = checked?.resume
    if (resume !== undefined || source instanceof ResumableRecord) {
      // A client already gone does not stop a resumable source: it runs whoever is connected.
      if (reply.request.method === 'HEAD') return headRecord(reply, source, settings, resume)
      return startRecord(reply, source, settings, resume)
    }
    return openStream(reply, source, settings)
  }

  /**
   * A resumable stream: the first request for the key starts the source (see ResumableRecords);
   * every request, that one included, streams the record, or gets 204 when there is none.
   */
  async function startRecord (reply: FastifyReply, source: unknown, settings: ResolvedOptions, resume: ResumeOptions | undefined): Promise<void> {
    let record: ResumableRecord
    if (resume === undefined) {
      record = source as ResumableRecord
    } else {
      const schemas = (reply.routeOptions.schema as FastifySchema | undefined)?.sse
      await records.start(resume.key, source, {
        format: schemas === undefined ? undefined : formatterOf(schemas, reply.server),
        ttl: resume.ttl ?? RESUME_DEFAULTS.ttl.default,
        maxEvents: resume.maxEvents ?? RESUME_DEFAULTS.maxEvents.default,
        maxBytes: resume.maxBytes ?? RESUME_DEFAULTS.maxBytes.default,
        onInvalid: settings.onInvalid
      }, reply.request.log)
      record = new ResumableRecord(resume.key, records)
    }
    if (!await records.readable(record.key, lastEventIdOf(reply.request, lastEventIdQuery))) {
      // No record (never started, or expired), or nothing left of it after the reader's
      // Last-Event-ID (it read to the end).
      return noContent(reply, record)
    }
    return openStream(reply, record, settings)
  }

  /**
   * HEAD on a resumable route starts nothing and answers what a GET would: 204 where a GET gets
   * 204 (no record, or read to its end after the Last-Event-ID), else the stream's head. A route
   * that starts records streams a key that has no record yet (its GET would start it).
   */
  async function headRecord (reply: FastifyReply, source: unknown, settings: ResolvedOptions, resume: ResumeOptions | undefined): Promise<void> {
    const key = resume === undefined ? (source as ResumableRecord).key : resume.key
    const streams = (resume !== undefined && !await records.exists(key)) ||
      await records.readable(key, lastEventIdOf(reply.request, lastEventIdQuery))
    if (streams) return openStream(reply, source, settings)
    return noContent(reply, source)
  }

  /** 204, on which EventSource stops reconnecting; `source` is closed unstarted. */
  function noContent (reply: FastifyReply, source: unknown): Promise<void> {
    const discarded = discardSource(source, reply.request.log)
    reply.code(204).send()
    const closed = whenResponseClosed(reply.raw)
    return discarded.then(() => closed)
  }

  function openStream (reply: FastifyReply, source: unknown, settings: ResolvedOptions): Promise<void> {
    const request = reply.request
    const raw = reply.raw
    if (request.method === 'HEAD' || isResponseClosed(raw)) {
      // HEAD (which Fastify answers for every GET route) gets the stream's head and nothing
      // runs; a client gone before the handler got here gets nothing. Either way the source
      // is closed unstarted: no stream is held, none counts against maxConnections.
      const discarded = discardSource(source, request.log)
      if (isResponseClosed(raw)) return discarded
      setStreamHeaders(reply)
      // The head a GET would get, Content-Encoding included.
      if (settings.compress !== undefined) negotiateCompression(reply, settings.compress)
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
    const lastEventId = lastEventIdOf(request, lastEventIdQuery)
    const observer = observeStream(() => ({
      request,
      route: reply.routeOptions.url,
      method: request.method,
      lastEventId,
      channel: source instanceof Channel ? source.name : undefined
    }))
    const stream: ServerEventStream = new ServerEventStream({
      format: schemas === undefined ? formatEvent : formatterOf(schemas, reply.server),
      framed: schemas === undefined,
      log: request.log,
      onInvalid: settings.onInvalid,
      heartbeat: settings.heartbeat === false ? undefined : heartbeats.ticker(settings.heartbeat),
      retry: settings.retry,
      lastEventId,
      onClose: () => {
        open.delete(stream)
        observer?.closed(stream.endReason as StreamEndReason)
      },
      observer
    }, raw)
    let running: Promise<void>
    if (isAttachable(source)) {
      observer?.opened()
      running = source[kAttach](stream).finally(() => stream.stop())
    } else {
      let opened: OpenSource<unknown>
      try {
        opened = openSource<unknown>(source, () => stream.context)
      } catch (err) {
        stream.destroy()
        throw err
      }
      // Announced before it runs: a sync source may write (or fail) events at once.
      observer?.opened()
      running = stream.run(opened)
    }
    open.set(stream, (request.raw as unknown as Partial<Http2ServerRequest>).stream?.session)
    stats.totalStreams++
    setStreamHeaders(reply)
    const encoding = settings.compress === undefined ? undefined : negotiateCompression(reply, settings.compress)
    reply.send(encoding === undefined ? stream : compressStream(stream, encoding, settings.compress as CompressSettings))
    // Settles once the source was closed and the response is over: before that Fastify still
    // has a reply in flight, and a handler that returned or awaited this must not finish early.
    return stream.settled(running)
  }

  // End every stream before the server stops listening: what is batched is written and each
  // response ends. A client that does not read keeps its connection (and close()) waiting, so
  // after closeGracePeriod what is left is destroyed. An HTTP/2 session outlives its streams
  // and Fastify waits for it: a GOAWAY lets it finish what is in flight and close.
  app.addHook('preClose', async () => {
    // Sources of resumable streams running here stop first: their records end, so that their
    // readers (here and elsewhere) end cleanly rather than wait for a source that is gone.
    await boundedBy(records.close(), closeGracePeriod)
    // Acknowledged events first: a publish() that resolved before close() reaches this
    // instance's subscribers before their streams end. Bounded: a bus that cannot deliver
    // (Redis down) does not hold the close past the grace period.
    await boundedBy(channels.flush().catch((err: unknown) => {
      app.log.warn({ err }, 'fastify-conduit: could not deliver pending channel events before closing')
    }), closeGracePeriod)
    const closing = [...open]
    if (closing.length === 0) return
    for (const [stream, session] of closing) {
      stream.stop('server')
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
function resolveStreamOptions (options: SSEReplyOptions, defaults: ResolvedOptions): ResolvedOptions {
  const { heartbeat = defaults.heartbeat, retry = defaults.retry, onInvalid = defaults.onInvalid } = options
  return { heartbeat, retry, onInvalid, compress: resolveCompress(options.compress, defaults.compress) }
}

/**
 * The `compress` option over the inherited settings (the plugin's, for `reply.sse`'s): `true`
 * takes them (or the defaults), an object is laid over them, `false` turns compression off.
 */
function resolveCompress (option: boolean | CompressOptions | undefined, inherited: CompressSettings | undefined): CompressSettings | undefined {
  if (option === undefined) return inherited
  if (option === false) return undefined
  const base = inherited ?? COMPRESS_DEFAULTS
  if (option === true) return base
  const { encodings = base.encodings, level = base.level, quality = base.quality } = option
  return { encodings, level, quality }
}

/**
 * Picks the coding for the request's `Accept-Encoding` and sets `Content-Encoding` (when one
 * was picked) and `Vary: accept-encoding` (always: the answer depends on the header). With
 * `Content-Encoding` set, @fastify/compress passes the body through: nothing is compressed
 * twice. When none was picked, the stream goes out as it is: @fastify/compress (whose
 * `customTypes` may match event streams, and whose codings may differ) is told so by its own
 * `x-no-compression` request header, rather than encoding it with an encoder that cannot be
 * flushed per event (which would refuse the stream).
 */
function negotiateCompression (reply: FastifyReply, settings: CompressSettings): CompressSettings['encodings'][number] | undefined {
  reply.header('vary', varyOnAcceptEncoding(reply.getHeader('vary') as string | undefined))
  const request = reply.request
  const encoding = negotiateEncoding(request.headers['accept-encoding'], settings.encodings)
  if (encoding !== undefined) reply.header('content-encoding', encoding)
  else request.headers['x-no-compression'] = 'fastify-conduit'
  return encoding
}

/** A resumable stream's key: a string of 1 to 512 characters, else InvalidResumeKeyError. */
function checkResumeKey (key: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 512) throw new InvalidResumeKeyError('it must be a string of 1 to 512 characters')
  return key
}

/**
 * The request's Last-Event-ID: its header or, when it has none and `query` names a parameter,
 * that parameter (see the `lastEventIdQuery` option). A header that is present wins even when
 * it is ignored (too long): the query holds an older cursor, and resuming from it would repeat
 * events.
 */
function lastEventIdOf (request: FastifyRequest, query: string | undefined): string | undefined {
  // A string: Node joins a repeated header it does not know into one value.
  // Empty is none, header and query alike: a client whose last event ID is empty sends no
  // Last-Event-ID (WHATWG HTML §9.2.4), and a page that puts an unset cursor in its URL means
  // "from now", not "an id I do not know" (which would replay the whole history after a gap).
  const header = request.headers['last-event-id'] as string | undefined
  if (header !== undefined && header !== '') return header.length <= MAX_LAST_EVENT_ID ? decodeHeader(header) : undefined
  if (query === undefined) return undefined
  const value = (request.query as Record<string, unknown> | null | undefined)?.[query]
  return typeof value === 'string' && value !== '' && value.length <= MAX_LAST_EVENT_ID ? value : undefined
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
