import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import fastifyConduit from '../../lib/index.js'
import type { Bus } from '../../lib/index.js'
import { deferred, EventReader, eventually, listen, LogCapture, uniqueName } from '../support/index.js'

/** How a suite gets its buses: `create` for an instance, `peer` for another instance on the same bus. */
export interface ResumeBuses {
  create: () => Bus
  peer: () => Bus
}

const Token = Type.Object({ text: Type.String() })
const Done = Type.Object({ tokens: Type.Integer() })
const events = { token: Token, done: Done }

/**
 * A source the test paces: `next(n)` lets it yield n more tokens; `finish()` makes it yield
 * `done` and end. Counts how often it was started, and whether its signal aborted.
 */
function pacedSource () {
  let allowed = 0
  let finished = false
  let wake: (() => void) | undefined
  const state = {
    starts: 0,
    aborted: false,
    closed: deferred(),
    next (n = 1) {
      allowed += n
      wake?.()
    },
    finish () {
      finished = true
      wake?.()
    },
    source: async function * ({ signal }: { signal: AbortSignal }) {
      state.starts++
      signal.addEventListener('abort', () => {
        state.aborted = true
        wake?.()
      })
      let sent = 0
      try {
        while (!signal.aborted) {
          if (sent < allowed) {
            yield { event: 'token' as const, data: { text: `t${sent++}` } }
            continue
          }
          if (finished) {
            yield { event: 'done' as const, data: { tokens: sent } }
            return
          }
          await new Promise<void>((resolve) => { wake = resolve })
        }
      } finally {
        state.closed.resolve()
      }
    }
  }
  return state
}

type Paced = ReturnType<typeof pacedSource>

async function instance (t: Test, bus: Bus, routes: (app: FastifyInstance) => void, log?: LogCapture): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify({ forceCloseConnections: true, logger: log?.logger ?? false })
  await app.register(fastifyConduit, { bus, heartbeat: false })
  routes(app)
  t.teardown(() => app.close())
  return { app, url: await listen(app) }
}

/** Routes of a chat: GET /chat/:id starts (or attaches to) the record; GET /attach/:id only attaches. */
function chatRoutes (sources: Map<string, Paced>, ttl?: number) {
  return (app: FastifyInstance): void => {
    app.get<{ Params: { id: string } }>('/chat/:id', { schema: { sse: events } }, (request, reply) => {
      const paced = sources.get(request.params.id) as Paced
      return reply.sse(paced.source, { resume: { key: `chat:${request.params.id}`, ...(ttl === undefined ? {} : { ttl }) } })
    })
    app.get<{ Params: { id: string } }>('/attach/:id', (request, reply) => reply.sse(app.sse.resumable(`chat:${request.params.id}`)))
  }
}

function texts (reader: EventReader): string[] {
  return reader.events.map((event) => event.event === 'token' ? JSON.parse(event.data).text : event.event)
}

/** The resumable-stream behaviours, run on a bus (memoryBus, redisBus). */
export function resumeSuite (t: Test, buses: ResumeBuses): void {
  t.test('one request streams the record to its end', async (t) => {
    const id = uniqueName('one')
    const paced = pacedSource()
    const { url } = await instance(t, buses.create(), chatRoutes(new Map([[id, paced]])))
    const reader = await EventReader.fetch(`${url}/chat/${id}`)
    paced.next(3)
    t.ok(await reader.received(3, 5000))
    paced.finish()
    t.ok(await reader.end(5000), 'the response ends with the source')
    t.same(texts(reader), ['t0', 't1', 't2', 'done'])
    t.ok(reader.events.every((event) => typeof event.id === 'string' && event.id !== ''), 'every event has the id the bus assigned')
    t.equal(paced.starts, 1)
  })

  t.test('a dropped client resumes with Last-Event-ID on the same and on another instance: every event once, then the end', async (t) => {
    const id = uniqueName('drop')
    const paced = pacedSource()
    const sources = new Map([[id, paced]])
    const first = await instance(t, buses.create(), chatRoutes(sources))
    const second = await instance(t, buses.peer(), chatRoutes(sources))
    const a = await EventReader.fetch(`${first.url}/chat/${id}`)
    paced.next(2)
    t.ok(await a.received(2, 5000))
    await a.abort()
    paced.next(2) // produced while nobody is connected: the source runs on
    t.ok(await eventually(() => paced.starts === 1, 1000))
    const b = await EventReader.fetch(`${first.url}/chat/${id}`, { 'last-event-id': a.events[1].id as string })
    t.ok(await b.received(2, 5000), 'the events made while away are replayed')
    await b.abort()
    paced.next(1)
    const c = await EventReader.fetch(`${second.url}/chat/${id}`, { 'last-event-id': b.events[1].id as string })
    t.ok(await c.received(1, 5000), 'another instance replays from the same record')
    t.notOk(paced.aborted, 'clients leaving never aborted the source')
    paced.next(1)
    paced.finish()
    t.ok(await c.end(5000))
    t.same([...texts(a), ...texts(b), ...texts(c)], ['t0', 't1', 't2', 't3', 't4', 't5', 'done'])
    t.equal(paced.starts, 1, 'the source ran once')
  })

  t.test('a request after the end gets the whole record within ttl, then 204', async (t) => {
    const id = uniqueName('late')
    const paced = pacedSource()
    // Within ttl: long enough for every request below on a loaded machine; its end is checked
    // on a record of its own, below.
    const { url } = await instance(t, buses.create(), chatRoutes(new Map([[id, paced]]), 60_000))
    const first = await EventReader.fetch(`${url}/chat/${id}`)
    paced.next(2)
    paced.finish()
    t.ok(await first.end(5000))
    const late = await EventReader.fetch(`${url}/chat/${id}`)
    t.ok(await late.end(5000))
    t.same(texts(late), ['t0', 't1', 'done'], 'the whole record, and the source did not run again')
    t.equal(paced.starts, 1)
    const attached = await EventReader.fetch(`${url}/attach/${id}`)
    t.ok(await attached.end(5000))
    t.same(texts(attached), ['t0', 't1', 'done'])
    // A reader that read it all and reconnects (as EventSource does after any end) is told to stop.
    const done = await fetch(`${url}/attach/${id}`, { headers: { 'last-event-id': first.events[2].id as string } })
    t.equal(done.status, 204, 'nothing after the last event: 204, so EventSource stops')
    const rest = await EventReader.fetch(`${url}/attach/${id}`, { 'last-event-id': first.events[0].id as string })
    t.ok(await rest.end(5000))
    t.same(texts(rest), ['t1', 'done'], 'from the middle: the rest')
    const unknown = await EventReader.fetch(`${url}/attach/${id}`, { 'last-event-id': '1-1' })
    t.ok(await unknown.end(5000))
    t.same(texts(unknown), ['t0', 't1', 'done'], 'an id not in the record: all of it')

    // After ttl: the record is given up, not before its ttl, nor (ttl ignored) only after the
    // default ten minutes.
    const briefId = uniqueName('brief')
    const brief = pacedSource()
    const ttl = 200
    const short = await instance(t, buses.create(), chatRoutes(new Map([[briefId, brief]]), ttl))
    const briefReader = await EventReader.fetch(`${short.url}/chat/${briefId}`)
    // Its ttl begins after the source ends, so after this.
    const ended = Date.now()
    brief.finish()
    t.ok(await briefReader.end(5000))
    const expired = async (): Promise<boolean> => {
      // Each probe bounded: one that lands in the instant the record's entries expired before
      // its state waits for an end that is gone (a known edge, left open) until it is aborted.
      try {
        const response = await fetch(`${short.url}/attach/${briefId}`, { signal: AbortSignal.timeout(1000) })
        await response.text()
        return response.status === 204
      } catch {
        return false
      }
    }
    while (!await expired() && Date.now() - ended < 10_000) await new Promise((resolve) => setTimeout(resolve, 10))
    const gone = Date.now() - ended
    t.ok(gone >= ttl && gone < 10_000, `expired: 204, on which EventSource stops, ${gone} ms after the end`)
  })

  t.test('an unknown key is answered 204 and nothing runs', async (t) => {
    const { url } = await instance(t, buses.create(), chatRoutes(new Map()))
    const response = await fetch(`${url}/attach/${uniqueName('none')}`)
    t.equal(response.status, 204)
    t.equal(await response.text(), '')
  })

  t.test('simultaneous first requests run the source once', async (t) => {
    const id = uniqueName('race')
    const paced = pacedSource()
    const sources = new Map([[id, paced]])
    const one = await instance(t, buses.create(), chatRoutes(sources))
    const two = await instance(t, buses.peer(), chatRoutes(sources))
    const readers = await Promise.all([one.url, two.url, one.url, two.url].map((url) => EventReader.fetch(`${url}/chat/${id}`)))
    paced.next(2)
    paced.finish()
    for (const reader of readers) {
      t.ok(await reader.end(5000))
      t.same(texts(reader), ['t0', 't1', 'done'])
    }
    t.equal(paced.starts, 1)
  })

  t.test('cancel from another instance aborts the source; readers end; the record stays', async (t) => {
    const id = uniqueName('cancel')
    const paced = pacedSource()
    const sources = new Map([[id, paced]])
    const one = await instance(t, buses.create(), chatRoutes(sources))
    const two = await instance(t, buses.peer(), chatRoutes(sources))
    const reader = await EventReader.fetch(`${one.url}/chat/${id}`)
    paced.next(1)
    t.ok(await reader.received(1, 5000))
    t.equal(await two.app.sse.cancel(`chat:${id}`), true)
    t.ok(await eventually(() => paced.aborted, 5000), 'the source signal aborted')
    t.ok(await reader.end(5000), 'the reader ends cleanly')
    t.equal(await two.app.sse.cancel(`chat:${id}`), false, 'nothing runs any more')
    const late = await EventReader.fetch(`${two.url}/attach/${id}`)
    t.ok(await late.end(5000))
    t.same(texts(late), ['t0'])
  })

  t.test('a source that throws ends the record; its readers end cleanly; logged once', async (t) => {
    const log = new LogCapture()
    const key = uniqueName('throws')
    const bus = buses.create()
    const { url } = await instance(t, bus, (app) => {
      app.get('/boom', (request, reply) => reply.sse(async function * () {
        yield { data: 'before' }
        throw new Error('model failed')
      }, { resume: { key } }))
      app.get('/attach', (request, reply) => reply.sse(app.sse.resumable(key)))
    }, log)
    const reader = await EventReader.fetch(`${url}/boom`)
    t.ok(await reader.end(5000))
    t.same(reader.events.map((event) => event.data), ['before'])
    const late = await EventReader.fetch(`${url}/attach`)
    t.ok(await late.end(5000))
    t.same(late.events.map((event) => event.data), ['before'])
    t.equal(log.count('the resumable source threw'), 1)
  })

  t.test('a record is bounded: beyond maxEvents the source stops and the record ends', async (t) => {
    const log = new LogCapture()
    const key = uniqueName('bounded')
    let closed = false
    const { url } = await instance(t, buses.create(), (app) => {
      app.get('/many', (request, reply) => reply.sse(function * () {
        try {
          for (let i = 0; ; i++) yield { data: i }
        } finally {
          closed = true
        }
      }, { resume: { key, maxEvents: 5 } }))
    }, log)
    const reader = await EventReader.fetch(`${url}/many`)
    t.ok(await reader.end(5000))
    t.same(reader.events.map((event) => event.data), ['0', '1', '2', '3', '4'])
    t.ok(closed, "the endless source's finally ran")
    const line = await log.waitFor('resumable record is full')
    t.equal((line.err as { code: string }).code, 'FST_ERR_CONDUIT_RECORD_LIMIT')
  })

  t.test('the server closing stops the sources running on it; readers end', async (t) => {
    const id = uniqueName('close')
    const paced = pacedSource()
    const { app, url } = await instance(t, buses.create(), chatRoutes(new Map([[id, paced]])))
    const reader = await EventReader.fetch(`${url}/chat/${id}`)
    paced.next(1)
    t.ok(await reader.received(1, 5000))
    await app.close()
    t.ok(paced.aborted)
    t.ok(await reader.end(5000))
  })
}
