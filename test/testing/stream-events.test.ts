import t, { type Test } from 'tap'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import fastifyConduit from '../../lib/index.js'
import { streamEvents } from '../../lib/testing/index.js'
import { deferred, startApp } from '../support/index.js'

const Token = Type.Object({ text: Type.String() })
const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })
const events = { token: Token, done: Done }

/** What the routes tell the tests: a /ticks source's finally ran; how far /flood was pulled. */
interface State { resolve: () => void, pulled?: number }

/** The routes every test uses. */
function routes (app: FastifyInstance, finished: State = { resolve: () => {} }): void {
  app.get('/flood', (request, reply) => reply.sse(function * () {
    for (finished.pulled = 1; finished.pulled <= 1_000_000; finished.pulled++) yield { data: 'x'.repeat(100) }
  }))
  app.get('/chat', { schema: { sse: events } }, (request, reply) =>
    reply.sse([{ event: 'token', id: '1', data: { text: 'Hello' } }, { event: 'token', data: { text: 'world' } }, { event: 'done', id: '2', retry: 500, data: { reason: 'stop' } }]))
  app.get('/echo', (request, reply) => reply.sse(({ lastEventId }) => [{ data: `after ${lastEventId ?? 'nothing'}` }]))
  app.post('/complete', { schema: { sse: events } }, (request, reply) => {
    const { prompt } = request.body as { prompt: string }
    const { n } = request.query as { n: string }
    return reply.sse(Array.from({ length: Number(n) }, () => ({ event: 'token' as const, data: { text: prompt } })))
  })
  app.get('/ticks', (request, reply) => reply.sse(async function * ({ signal }) {
    try {
      for (let i = 1; !signal.aborted; i++) {
        yield { id: String(i), data: String(i) }
        await new Promise((resolve) => setImmediate(resolve))
      }
    } finally {
      finished.resolve()
    }
  }))
  app.get('/bad', { schema: { sse: events } }, (request, reply) => reply.sse([{ event: 'token', data: { text: 'x' } }]))
  app.get('/gone', (request, reply) => reply.code(204).send())
  app.get('/private', (request, reply) => reply.code(401).send({ message: 'who are you?' }))
}

/** The app with the routes, listening on 127.0.0.1 or not. */
async function app (t: Test, listening: boolean, finished?: State): Promise<FastifyInstance> {
  if (listening) return (await startApp(t, {}, (app) => routes(app, finished))).app
  const app = Fastify()
  await app.register(fastifyConduit, { heartbeat: false })
  routes(app, finished)
  t.teardown(() => app.close())
  return app
}

for (const listening of [true, false]) {
  const transport = listening ? 'http (listening)' : 'inject'

  t.test(`${transport}: typed events in order, with status and headers`, async (t) => {
    const stream = await streamEvents(await app(t, listening), '/chat', { events })
    t.equal(stream.statusCode, 200)
    t.match(stream.headers['content-type'], /^text\/event-stream/)
    t.equal(stream.text, undefined)
    t.same(await stream.collect(), [
      { event: 'token', data: { text: 'Hello' }, id: '1' },
      { event: 'token', data: { text: 'world' }, id: '1' },
      { event: 'done', data: { reason: 'stop' }, id: '2', retry: 500 }
    ])
    t.equal(stream.ended, 'end')
    t.equal(stream.count, 3)
    t.equal(stream.lastEventId, '2')
  })

  t.test(`${transport}: without events, data is the text`, async (t) => {
    const stream = await streamEvents(await app(t, listening), '/chat')
    const [first] = await stream.take(1)
    t.same(first, { event: 'token', data: '{"text":"Hello"}', id: '1' })
    t.equal(stream.ended, undefined, 'not ended while events remain')
    await stream.close()
    t.equal(stream.ended, 'closed')
    t.same(await stream.collect(), [], 'nothing after close')
  })

  t.test(`${transport}: lastEventId is sent as Last-Event-ID`, async (t) => {
    const stream = await streamEvents(await app(t, listening), '/echo', { lastEventId: '41' })
    t.equal(stream.lastEventId, '41')
    t.same(await stream.collect(), [{ event: 'message', data: 'after 41', id: '41' }])
  })

  t.test(`${transport}: a POST with a JSON body and a query`, async (t) => {
    const stream = await streamEvents(await app(t, listening), '/complete', { body: { prompt: 'Hi' }, query: { n: '2' }, events })
    t.same((await stream.collect()).map((event) => event.data), [{ text: 'Hi' }, { text: 'Hi' }])
  })

  t.test(`${transport}: limit stops after N events and disconnects; the server sees the client go away`, async (t) => {
    const finished = deferred()
    const stream = await streamEvents(await app(t, listening, finished), '/ticks', { limit: 3 })
    t.same((await stream.collect()).map((event) => event.data), ['1', '2', '3'])
    t.equal(stream.ended, 'limit')
    await finished.promise
    t.pass("the source's finally ran")
  })

  t.test(`${transport}: break in for await disconnects`, async (t) => {
    const finished = deferred()
    const stream = await streamEvents(await app(t, listening, finished), '/ticks')
    for await (const event of stream) {
      if (event.id === '5') break
    }
    t.equal(stream.ended, 'closed')
    await finished.promise
    t.pass("the source's finally ran")
  })

  t.test(`${transport}: a slow reader holds the source back (backpressure)`, async (t) => {
    const state: State = { resolve: () => {}, pulled: 0 }
    const stream = await streamEvents(await app(t, listening, state), '/flood', { readDelay: 1 })
    await stream.take(1)
    // Not reading: the source is pulled until the buffers between it and the test are full, then stops.
    let last = -1
    while (state.pulled !== last) {
      last = state.pulled as number
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    t.ok(last < 1_000_000, `the source stalled after ${last} of 1,000,000 events`)
    t.same((await stream.take(3)).map((event) => event.data.length), [100, 100, 100], 'reading goes on after the stall')
    await stream.close()
  })

  t.test(`${transport}: a response that is not an event stream yields nothing; its body is in text`, async (t) => {
    const target = await app(t, listening)
    const gone = await streamEvents(target, '/gone')
    t.equal(gone.statusCode, 204)
    t.equal(gone.text, '')
    t.same(await gone.collect(), [])
    t.equal(gone.ended, 'end')
    const denied = await streamEvents(target, '/private', { events })
    t.equal(denied.statusCode, 401)
    t.same(JSON.parse(denied.text as string), { message: 'who are you?' })
    t.same(await denied.collect(), [])
  })

  t.test(`${transport}: an event the schemas do not declare rejects next() with the client's coded error`, async (t) => {
    const stream = await streamEvents(await app(t, listening), '/bad', { events: { done: Done } })
    await t.rejects(stream.next(), { code: 'FST_ERR_CONDUIT_CLIENT_UNDECLARED_EVENT' })
    await stream.close()
  })
}

t.test('concurrent next() calls get the events in order', async (t) => {
  const stream = await streamEvents(await app(t, true), '/chat', { events })
  const [a, b, c, d] = await Promise.all([stream.next(), stream.next(), stream.next(), stream.next()])
  t.same([a.value?.event, b.value?.event, c.value?.event, d.done], ['token', 'token', 'done', true])
})

t.test('a connection the server destroys ends the iteration with ended "error"', async (t) => {
  const { app } = await startApp(t, {}, (app) => {
    app.get('/drop', (request, reply) => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
      reply.raw.write('data: one\n\ndata: tw')
      setTimeout(() => reply.raw.destroy(), 50)
    })
  })
  const stream = await streamEvents(app, '/drop')
  t.same(await stream.collect(), [{ event: 'message', data: 'one', id: '' }])
  t.equal(stream.ended, 'error')
  t.ok(stream.error instanceof Error)
  await stream.close()
})

t.test('a server listening on a wildcard address is reached on loopback', async (t) => {
  for (const host of ['0.0.0.0', '::']) {
    const app = Fastify()
    await app.register(fastifyConduit, { heartbeat: false })
    routes(app)
    t.teardown(() => app.close())
    await app.listen({ host, port: 0 })
    const stream = await streamEvents(app, '/chat', { transport: 'http', limit: 1 })
    t.equal((await stream.collect()).length, 1, host)
  }
})

t.test('an HTTP/2 server is tested through inject; a listening HTTP/1.1 one can be too', async (t) => {
  const http2 = Fastify({ http2: true })
  await http2.register(fastifyConduit, { heartbeat: false })
  routes(http2 as unknown as FastifyInstance)
  t.teardown(() => http2.close())
  await http2.listen({ host: '127.0.0.1', port: 0 })
  t.equal((await (await streamEvents(http2, '/chat')).collect()).length, 3)
  const http1 = await app(t, true)
  t.equal((await (await streamEvents(http1, '/chat', { transport: 'inject' })).collect()).length, 3)
})

t.test('headers are sent; Accept and Content-Type given by the test are kept', async (t) => {
  const seen: Array<Record<string, unknown>> = []
  const { app } = await startApp(t, {}, (app) => {
    app.addContentTypeParser('text/plain', { parseAs: 'string' }, (request, body, done) => { done(null, body) })
    app.post('/headers', (request, reply) => {
      seen.push({ ...request.headers, url: request.url })
      return reply.sse([{ data: request.body as string }])
    })
  })
  await (await streamEvents(app, '/headers?a=1', { headers: { Accept: '*/*', 'content-type': 'text/plain', 'x-test': 'yes' }, body: 'raw', query: { b: '2' } })).collect()
  await (await streamEvents(app, '/headers', { method: 'POST', query: {} })).collect()
  t.match(seen[0], { accept: '*/*', 'content-type': 'text/plain', 'x-test': 'yes', url: '/headers?a=1&b=2' })
  t.match(seen[1], { accept: 'text/event-stream' })
})

t.test('wrong options reject with FST_ERR_CONDUIT_INVALID_OPTION', async (t) => {
  const target = await app(t, false)
  await t.rejects(streamEvents(target, '/chat', { limit: 0 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  await t.rejects(streamEvents(target, '/chat', { transport: 'ws' as 'http' }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  await t.rejects(streamEvents(target, '/chat', { readDelay: -1 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
})
