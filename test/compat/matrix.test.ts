// The compatibility matrix: reply.sse inside the Fastify apps people run. Every cell is one
// app setup (hooks, ecosystem plugins) × one source kind × one protocol × GET or HEAD, on a
// real listening server with a real client. One app per setup and protocol carries a route
// per source kind; its cells run one after the other, then the app must close promptly.
import { AsyncLocalStorage } from 'node:async_hooks'
import { PassThrough, Readable } from 'node:stream'
import { createGzip } from 'node:zlib'
import { setImmediate as nextTurn } from 'node:timers/promises'
import fastifyCompress from '@fastify/compress'
import fastifyCors from '@fastify/cors'
import fastifyHelmet from '@fastify/helmet'
import fastifyRateLimit from '@fastify/rate-limit'
import Fastify from 'fastify'
import type { FastifyInstance, FastifyRequest, RouteHandlerMethod } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import fastifyConduit from '../../lib/index.js'
import type { Channel, FastifyConduitOptions, SSEMessage, SSESource } from '../../lib/index.js'
import { closeApp, connectClient, deferred, eventually, EventReader, LogCapture } from '../support/index.js'
import type { Client, Headers, Method, Protocol, ReceivedEvent, Response } from '../support/index.js'

// Bounds on waits that take about a millisecond when things work: they only turn a hang into
// a failed assertion, so they are generous. On a loaded machine (several suites on two cores,
// eight apps at once here) a response head took over 2 s.
const PROMPT = 10_000
const CLOSE = 5_000

// What every source sends: a named event, JSON data, and data on two lines.
const EVENTS = [
  { event: 'greeting', id: '1', data: 'hello' },
  { id: '2', data: { n: 2 } },
  { id: '3', data: 'two\nlines' }
]
// What an EventSource dispatches for them.
const RECEIVED: ReceivedEvent[] = [
  { event: 'greeting', id: '1', data: 'hello' },
  { event: 'message', id: '2', data: '{"n":2}' },
  { event: 'message', id: '3', data: 'two\nlines' }
]

/** What one request's source did: whether it started, whether its `finally` ran. */
class Probe {
  started = false
  finished = false
  readonly #released = deferred()
  /** What a live source waits on after its first event; the test releases it. */
  readonly released = this.#released.promise

  start (): void { this.started = true }
  finish (): void { this.finished = true }
  release (): void { this.#released.resolve() }
}

/** One app of the matrix, with what its routes and cells share. */
interface MatrixApp {
  app: FastifyInstance
  /** The probe of each request, by its `x-cell` header. */
  probes: Map<string, Probe>
  channel: Channel
  /** Ids the bus gave the channel's events: one published before EVENTS, then EVENTS'. */
  channelIds: string[]
  /** Every line the app logged. */
  logs: Array<Record<string, unknown>>
  /** Errors its requests left uncaught: each would crash a production process. */
  crashes: unknown[]
}

// A stream that would crash the process (an uncaught error) fails the cell it happened in, and
// the matrix goes on. With a listener of ours, tap leaves uncaught errors to it; each is
// charged to the app whose request raised it, found through the async context of its server.
const appOf = new AsyncLocalStorage<unknown[]>()
const strays: unknown[] = []
const uncaught = (err: unknown): void => { (appOf.getStore() ?? strays).push(err) }
process.on('uncaughtException', uncaught)
process.on('unhandledRejection', uncaught)

// ---------------------------------------------------------------------------------------------
// Sources: one route each, on every app.

interface SourceKind {
  name: string
  path: string
  /** The source of one request; it records its start and its `finally` on the probe. */
  make (probe: Probe, matrix: MatrixApp): SSESource<SSEMessage>
  /** A channel stream never ends by itself: the client leaves once the events are in. */
  endless?: boolean
  /** After its first event, the source waits until the client has decoded that event. */
  live?: boolean
  /** Request headers the source needs (the channel's Last-Event-ID). */
  headers? (matrix: MatrixApp): Record<string, string>
  /** The events the client must receive, when not RECEIVED. */
  expected? (matrix: MatrixApp): ReceivedEvent[]
}

function * syncEvents (probe: Probe) {
  probe.start()
  try {
    yield * EVENTS
  } finally {
    probe.finish()
  }
}

async function * asyncEvents (probe: Probe) {
  probe.start()
  try {
    yield * EVENTS
  } finally {
    probe.finish()
  }
}

/**
 * An array or a Set has no `finally`: its iterator reports to the probe when it is first
 * pulled and when it is exhausted or returned.
 */
function tracked<T extends Iterable<unknown>> (iterable: T, probe: Probe): T {
  const iterate = iterable[Symbol.iterator].bind(iterable)
  Object.defineProperty(iterable, Symbol.iterator, {
    value: () => {
      const iterator = iterate()
      let pulled = false
      return {
        next () {
          if (!pulled) { pulled = true; probe.start() }
          const step = iterator.next()
          if (step.done === true) probe.finish()
          return step
        },
        return (value?: unknown) {
          probe.finish()
          return { done: true, value }
        },
        [Symbol.iterator] () { return this }
      }
    }
  })
  return iterable
}

const sources: SourceKind[] = [
  { name: 'array', path: '/array', make: (probe) => tracked([...EVENTS], probe) },
  { name: 'Set', path: '/set', make: (probe) => tracked(new Set(EVENTS), probe) },
  { name: 'sync generator', path: '/sync-generator', make: (probe) => syncEvents(probe) },
  { name: 'async generator', path: '/async-generator', make: (probe) => asyncEvents(probe) },
  {
    name: 'async generator awaiting I/O',
    path: '/async-generator-io',
    make: (probe) => (async function * () {
      probe.start()
      try {
        for (const event of EVENTS) {
          yield event
          await nextTurn()
        }
      } finally {
        probe.finish()
      }
    })()
  },
  { name: 'object-mode Readable', path: '/readable', make: (probe) => Readable.from(asyncEvents(probe)) },
  {
    name: 'source function',
    path: '/source-function',
    make: (probe) => ({ signal }: { signal: AbortSignal }) => (async function * () {
      probe.start()
      try {
        for (const event of EVENTS) {
          await nextTurn(undefined, { signal })
          yield event
        }
      } finally {
        probe.finish()
      }
    })()
  },
  {
    name: 'channel replay',
    path: '/channel',
    // A channel has no finally of its own: the route finishes the probe when reply.sse settles.
    make: (probe, { channel }) => { probe.start(); return channel },
    endless: true,
    headers: ({ channelIds }) => ({ 'last-event-id': channelIds[0] }),
    // Without a schema a channel sends a string verbatim and anything else as JSON, as reply.sse does.
    expected: ({ channelIds }) => RECEIVED.map((event, i) => ({ ...event, id: channelIds[i + 1] }))
  },
  {
    name: 'live async generator',
    path: '/live',
    make: (probe) => (async function * () {
      probe.start()
      try {
        yield EVENTS[0]
        await probe.released
        yield * EVENTS.slice(1)
      } finally {
        probe.finish()
      }
    })(),
    live: true
  }
]

// ---------------------------------------------------------------------------------------------
// App setups: each registered as an app would, before fastify-conduit and the routes.

interface Setup {
  name: string
  install (app: FastifyInstance): unknown
  /** Headers every request of this setup sends. */
  headers?: Record<string, string>
  /** The status this setup answers instead of a stream (an auth hook that refuses). */
  refuses?: number
  /**
   * The code fastify-conduit logs when it refuses to stream through this setup (an encoder
   * that cannot be flushed per event): the response is a 200 that ends at once, and nothing
   * is left running.
   */
  refusesStream?: string
  /** Checks on the stream's response head, beyond status and content-type. */
  head? (t: Test, headers: Headers): void
  /** fastify-conduit's options beyond `heartbeat: false`. */
  conduit?: FastifyConduitOptions
}

// An async hook that really waits, as an auth check or a database lookup does.
const io = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

const hookSetups: Setup[] = [
  { name: 'async onRequest', install: (app) => app.addHook('onRequest', async () => { await io() }) },
  { name: 'callback onRequest', install: (app) => app.addHook('onRequest', (request, reply, done) => { setImmediate(done) }) },
  { name: 'async preParsing', install: (app) => app.addHook('preParsing', async (request, reply, payload) => { await io(); return payload }) },
  { name: 'callback preParsing', install: (app) => app.addHook('preParsing', (request, reply, payload, done) => { setImmediate(() => done(null, payload)) }) },
  { name: 'async preValidation', install: (app) => app.addHook('preValidation', async () => { await io() }) },
  { name: 'callback preValidation', install: (app) => app.addHook('preValidation', (request, reply, done) => { setImmediate(done) }) },
  { name: 'async preHandler', install: (app) => app.addHook('preHandler', async () => { await io() }) },
  { name: 'callback preHandler', install: (app) => app.addHook('preHandler', (request, reply, done) => { setImmediate(done) }) },
  { name: 'async preSerialization', install: (app) => app.addHook('preSerialization', async (request, reply, payload) => { await io(); return payload }) },
  { name: 'callback preSerialization', install: (app) => app.addHook('preSerialization', (request, reply, payload, done) => { setImmediate(() => done(null, payload)) }) },
  { name: 'async onSend', install: (app) => app.addHook('onSend', async (request, reply, payload) => { await io(); return payload }) },
  { name: 'callback onSend', install: (app) => app.addHook('onSend', (request, reply, payload, done) => { setImmediate(() => done(null, payload)) }) }
]

async function checkToken (authorization: string | undefined): Promise<boolean> {
  await io()
  return authorization === 'Bearer let-me-in'
}

function authHook (app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    if (!await checkToken(request.headers.authorization)) return reply.code(401).send({ error: 'Unauthorized' })
  })
}

const setups: Setup[] = [
  { name: 'no hooks', install: () => {} },
  ...hookSetups,
  {
    name: 'helmet',
    install: (app) => app.register(fastifyHelmet),
    head: (t, headers) => t.equal(headers['x-content-type-options'], 'nosniff', "helmet's headers are kept")
  },
  {
    name: 'rate-limit',
    install: (app) => app.register(fastifyRateLimit, { max: 1000 }),
    head: (t, headers) => t.equal(headers['x-ratelimit-limit'], '1000', "rate-limit's headers are kept")
  },
  {
    name: 'cors',
    install: (app) => app.register(fastifyCors, { origin: true, credentials: true }),
    headers: { origin: 'https://app.example' },
    head: (t, headers) => {
      t.equal(headers['access-control-allow-origin'], 'https://app.example')
      t.equal(headers['access-control-allow-credentials'], 'true')
    }
  },
  {
    name: 'compress',
    install: (app) => app.register(fastifyCompress),
    headers: { 'accept-encoding': 'gzip' },
    head: (t, headers) => t.notOk(headers['content-encoding'], 'text/event-stream is not compressed by default')
  },
  {
    name: 'compress text/*',
    install: (app) => app.register(fastifyCompress, { customTypes: /^text\// }),
    headers: { 'accept-encoding': 'gzip' },
    refusesStream: 'FST_ERR_CONDUIT_UNFLUSHABLE_ENCODING'
  },
  {
    name: 'compress option + compress text/*',
    install: (app) => app.register(fastifyCompress, { customTypes: /^text\// }),
    conduit: { compress: true },
    headers: { 'accept-encoding': 'br, gzip' },
    head: (t, headers) => {
      t.equal(headers['content-encoding'], 'gzip', 'compressed once, by fastify-conduit')
      t.equal(headers.vary, 'accept-encoding')
    }
  },
  {
    name: 'onSend node:zlib gzip',
    install: (app) => app.addHook('onSend', async (request, reply, payload) => {
      if (!(payload instanceof Readable)) return payload
      reply.header('content-encoding', 'gzip')
      return payload.pipe(createGzip())
    }),
    headers: { 'accept-encoding': 'gzip' },
    head: (t, headers) => t.equal(headers['content-encoding'], 'gzip')
  },
  {
    name: 'onSend PassThrough',
    install: (app) => app.addHook('onSend', async (request, reply, payload) =>
      payload instanceof Readable ? payload.pipe(new PassThrough()) : payload)
  },
  { name: 'auth allows', install: authHook, headers: { authorization: 'Bearer let-me-in' } },
  { name: 'auth refuses', install: authHook, headers: { authorization: 'Bearer wrong' }, refuses: 401 }
]

// ---------------------------------------------------------------------------------------------
// The matrix.

type Style = 'return' | 'await'

/** Both handler styles appear with every setup and with every source kind. */
function styleOf (setupIndex: number, sourceIndex: number): Style {
  return (setupIndex + sourceIndex) % 2 === 0 ? 'return' : 'await'
}

async function buildApp (setup: Setup, setupIndex: number, protocol: Protocol): Promise<MatrixApp> {
  const logs = new LogCapture()
  const logger = logs.logger
  // One type for both: the routes below use nothing that differs between HTTP/1.1 and HTTP/2.
  const app = (protocol === 'http2' ? Fastify({ http2: true, logger }) : Fastify({ logger })) as unknown as FastifyInstance
  await setup.install(app)
  await app.register(fastifyConduit, { heartbeat: false, ...setup.conduit })
  const channel = app.sse.channel('compat')
  const channelIds: string[] = []
  for (const message of [{ data: 'before' }, ...EVENTS.map(({ id, ...message }) => message)]) {
    channelIds.push(await channel.publish(message))
  }
  const matrix: MatrixApp = { app, probes: new Map(), channel, channelIds, logs: logs.lines, crashes: [] }
  for (const [sourceIndex, kind] of sources.entries()) {
    app.get(kind.path, route(matrix, kind, styleOf(setupIndex, sourceIndex)))
  }
  await appOf.run(matrix.crashes, () => app.listen({ host: '127.0.0.1', port: 0 }))
  return matrix
}

/** A route as users write it: `return reply.sse(source)` or `await reply.sse(source)`. */
function route (matrix: MatrixApp, kind: SourceKind, style: Style): RouteHandlerMethod {
  const probeOf = (request: FastifyRequest): Probe => matrix.probes.get(String(request.headers['x-cell'])) ?? new Probe()
  // A channel's stream is over when reply.sse settles: that is its finally.
  const settled = (probe: Probe): void => { if (kind.endless === true) probe.finish() }
  if (style === 'return') {
    return (request, reply) => {
      const probe = probeOf(request)
      return reply.sse(kind.make(probe, matrix)).finally(() => settled(probe))
    }
  }
  return async (request, reply) => {
    const probe = probeOf(request)
    try {
      await reply.sse(kind.make(probe, matrix))
    } finally {
      settled(probe)
    }
  }
}

let cells = 0

/**
 * Streams open on the app. A cell checks it comes back to what it was before the cell (0 unless
 * an earlier cell left one open, which that cell reports), so each cell answers for itself.
 */
function openStreams ({ app }: MatrixApp): number {
  return app.sse.stats().openStreams
}

/**
 * What a successful stream must not log, one line each: an error-level line, or a write after
 * end (Fastify logs that one as a warning).
 */
function problemsSince (matrix: MatrixApp, index: number): string[] {
  return matrix.logs.slice(index)
    .filter((line) => Number(line.level) >= 50 || /write after end/i.test(JSON.stringify(line)))
    .map(({ level, msg, err }) => {
      const { code, message } = (err ?? {}) as { code?: string, message?: string }
      return `${String(level)} ${String(msg)}${err === undefined ? '' : ` (${String(code ?? '')} ${String(message)})`}`
    })
}

/** One cell's response, with what it checks against: its probe, and the log lines and open streams there were before it. */
interface Cell { probe: Probe, res: Response, reader: EventReader, logged: number, open: number }

/**
 * Sends one cell's request and runs `check` on what came back; whatever it found, the source
 * and the response are let go after it, and the cell must have caused no uncaught error.
 */
async function runCell (t: Test, matrix: MatrixApp, client: Client, setup: Setup, kind: SourceKind, method: Method, check: (cell: Cell) => Promise<void>): Promise<void> {
  const cell = String(++cells)
  const probe = new Probe()
  matrix.probes.set(cell, probe)
  const crashed = matrix.crashes.length
  const before = { logged: matrix.logs.length, open: openStreams(matrix) }
  const res = await client.request(kind.path, method, { ...setup.headers, ...kind.headers?.(matrix), 'x-cell': cell })
  try {
    await check({ probe, res, reader: new EventReader(res.body), ...before })
  } finally {
    probe.release()
    res.close()
    t.same(matrix.crashes.slice(crashed).map(String), [], 'no uncaught error')
  }
}

/**
 * Once the cell's response is over: its source has ended (`served`: it ran; else it may never
 * have started, as for a refused stream or a HEAD) and the app counts no stream for it. Waits
 * up to PROMPT for both, then checks both.
 */
async function checkReleased (t: Test, matrix: MatrixApp, probe: Probe, open: number, { served, openMessage }: { served: boolean, openMessage: string }): Promise<void> {
  const over = (): boolean => served ? probe.finished : !probe.started || probe.finished
  await eventually(() => over() && openStreams(matrix) <= open, PROMPT)
  t.ok(over(), served ? "the source's finally ran" : 'the source never started, or its finally ran')
  t.equal(openStreams(matrix), open, openMessage)
}

async function getCell (t: Test, matrix: MatrixApp, client: Client, setup: Setup, kind: SourceKind): Promise<void> {
  return runCell(t, matrix, client, setup, kind, 'GET', async ({ probe, res, reader, logged, open }) => {
    if (setup.refuses !== undefined) {
      t.equal(res.status, setup.refuses, `status ${setup.refuses}`)
      t.ok(await reader.end(PROMPT), 'the answer ends')
      t.notOk(probe.started, 'the source never started')
      return
    }
    if (setup.refusesStream !== undefined) {
      t.equal(res.status, 500, 'status 500: EventSource stops instead of reconnecting')
      t.match(res.headers['content-type'], /^application\/json/, 'a JSON error body')
      t.ok(await reader.end(PROMPT), 'the refused stream ends at once')
      await checkReleased(t, matrix, probe, open, { served: false, openMessage: 'the stream is no longer counted open' })
      const codes = matrix.logs.slice(logged).map((line) => (line.err as { code?: string } | undefined)?.code)
      t.ok(codes.includes(setup.refusesStream), `${setup.refusesStream} is logged`)
      return
    }
    t.equal(res.status, 200, 'status 200')
    t.match(res.headers['content-type'], /^text\/event-stream/, 'content-type text/event-stream')
    t.equal(res.headers['content-length'], undefined, 'no content-length')
    setup.head?.(t, res.headers)
    const expected = kind.expected?.(matrix) ?? RECEIVED
    if (kind.live === true) {
      t.ok(await reader.received(1, PROMPT), 'the first event arrives while the source waits for the client')
      probe.release()
    }
    if (kind.endless === true) {
      t.ok(await reader.received(expected.length, PROMPT), 'every event arrives')
      res.close()
    } else {
      t.ok(await reader.end(PROMPT), 'the response ends')
    }
    t.same(reader.events, expected, 'every event, once, in order')
    t.equal(reader.error?.message, undefined, 'the body does not fail')
    await checkReleased(t, matrix, probe, open, { served: true, openMessage: 'the stream is no longer counted open' })
    t.same(problemsSince(matrix, logged), [], 'no error logged, no write after end')
  })
}

async function headCell (t: Test, matrix: MatrixApp, client: Client, setup: Setup, kind: SourceKind): Promise<void> {
  return runCell(t, matrix, client, setup, kind, 'HEAD', async ({ probe, res, reader, logged, open }) => {
    t.equal(res.status, setup.refuses ?? 200, `status ${setup.refuses ?? 200}`)
    if (setup.refuses === undefined) t.match(res.headers['content-type'], /^text\/event-stream/, 'content-type text/event-stream')
    t.ok(await reader.end(PROMPT), 'the response ends')
    // Node's HTTP/1.1 client reads no body after a HEAD whatever comes; HTTP/2 would show one.
    t.equal(reader.bytes, 0, 'no body')
    await checkReleased(t, matrix, probe, open, { served: false, openMessage: 'a HEAD holds no stream' })
    t.same(problemsSince(matrix, logged), [], 'no error logged, no write after end')
  })
}

const methods: Array<[Method, typeof getCell]> = [['GET', getCell], ['HEAD', headCell]]

t.test('matrix', async (t) => {
  // Apps are independent servers: several run at once, each running its own cells in order.
  t.jobs = 8
  for (const protocol of ['http1', 'http2'] as const) {
    for (const [setupIndex, setup] of setups.entries()) {
      t.test(`${protocol} · ${setup.name}`, async (t) => {
        const matrix = await buildApp(setup, setupIndex, protocol)
        const client = connectClient(matrix.app, protocol, PROMPT)
        for (const [sourceIndex, kind] of sources.entries()) {
          for (const [method, cell] of methods) {
            const style = styleOf(setupIndex, sourceIndex)
            await t.test(`${protocol} · ${setup.name} · ${kind.name} · ${method} (${style})`, (t) => cell(t, matrix, client, setup, kind))
          }
        }
        await t.test(`${protocol} · ${setup.name} · app.close()`, async (t) => {
          const crashed = matrix.crashes.length
          const closed = await closeApp(matrix.app, client, CLOSE)
          t.ok(closed.inTime, 'resolves within 5 s')
          t.ok(closed.afterDrop, 'resolves once the clients are gone')
          t.same(matrix.crashes.slice(crashed).map(String), [], 'no uncaught error')
        })
      })
    }
  }
})

t.test('no uncaught error outside the apps', async (t) => {
  t.same(strays.map(String), [])
})
