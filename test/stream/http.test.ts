import { connect as http2Connect, constants } from 'node:http2'
import { setTimeout as sleep } from 'node:timers/promises'
import fastifyCors from '@fastify/cors'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import fastifyConduit from '../../lib/index.js'
import { deferred, eventually, fastifyDefaultClose, FrameReader, LogCapture, startApp } from '../support/index.js'

t.test('response headers, and headers set earlier are kept', async (t) => {
  const { url } = await startApp(t, {}, (app) => {
    app.get('/stream', (request, reply) => {
      reply.header('x-custom', 'kept')
      return reply.sse([{ data: 'x' }])
    })
  }, { before: (app) => app.register(fastifyCors, { origin: 'https://app.example' }) })
  const reader = await FrameReader.open(url + '/stream', { origin: 'https://app.example' })
  t.equal(reader.response.statusCode, 200)
  t.match(reader.headers, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no',
    connection: 'keep-alive',
    'access-control-allow-origin': 'https://app.example',
    'x-custom': 'kept'
  })
  t.notOk('content-length' in reader.headers)
  t.same(await reader.all(), ['data: x\n\n'])
})

t.test('retry is written once at stream start; per-stream options override the plugin', async (t) => {
  const { url } = await startApp(t, { retry: 3000 }, (app) => {
    app.get('/plugin-retry', (request, reply) => reply.sse([{ data: 'x' }]))
    app.get('/stream-retry', (request, reply) => reply.sse([{ data: 'x' }], { retry: 10 }))
  })
  t.same(await (await FrameReader.open(url + '/plugin-retry')).all(), ['retry: 3000\n\n', 'data: x\n\n'])
  t.same(await (await FrameReader.open(url + '/stream-retry')).all(), ['retry: 10\n\n', 'data: x\n\n'])
})

t.test('Last-Event-ID reaches the source; an absurdly long one is ignored', async (t) => {
  const { url } = await startApp(t, {}, (app) => {
    app.get('/resume', (request, reply) => reply.sse(function * ({ lastEventId }) {
      yield { data: lastEventId === undefined ? 'none' : `after ${lastEventId}` }
    }))
  })
  t.same(await (await FrameReader.open(url + '/resume')).all(), ['data: none\n\n'])
  t.same(await (await FrameReader.open(url + '/resume', { 'last-event-id': '41' })).all(), ['data: after 41\n\n'])
  t.same(await (await FrameReader.open(url + '/resume', { 'last-event-id': 'x'.repeat(1024) })).all(), [`data: after ${'x'.repeat(1024)}\n\n`])
  t.same(await (await FrameReader.open(url + '/resume', { 'last-event-id': 'x'.repeat(1025) })).all(), ['data: none\n\n'])
  // EventSource sends a non-ASCII id as UTF-8 bytes; it must come back as the same string.
  const id = 'é-€-😀'
  const reader = await FrameReader.open(url + '/resume', { 'last-event-id': Buffer.from(id, 'utf8').toString('latin1') })
  t.same(await reader.all(), [`data: after ${id}\n\n`])
})

t.test('lastEventIdQuery: the cursor from a query parameter when the header is absent; the header wins; the same 1024-character limit', async (t) => {
  const resume = (app: FastifyInstance): void => {
    app.get('/resume', (request, reply) => reply.sse(function * ({ lastEventId }) {
      yield { data: lastEventId === undefined ? 'none' : `after ${lastEventId}` }
    }))
  }
  const { url } = await startApp(t, { lastEventIdQuery: 'lastEventId' }, resume)
  const all = async (path: string, headers: Record<string, string> = {}): Promise<string[]> => await (await FrameReader.open(url + path, headers)).all()
  t.same(await all('/resume?lastEventId=41'), ['data: after 41\n\n'])
  t.same(await all('/resume?lastEventId=' + encodeURIComponent('é 😀&=')), ['data: after é 😀&=\n\n'], 'percent-decoded')
  t.same(await all('/resume?lastEventId=41', { 'last-event-id': '45' }), ['data: after 45\n\n'], 'the header wins')
  t.same(await all('/resume?lastEventId=41', { 'last-event-id': 'x'.repeat(1025) }), ['data: none\n\n'], 'even ignored, the header wins over an older cursor')
  t.same(await all('/resume?lastEventId=' + 'x'.repeat(1024)), [`data: after ${'x'.repeat(1024)}\n\n`])
  t.same(await all('/resume?lastEventId=' + 'x'.repeat(1025)), ['data: none\n\n'], 'too long: ignored')
  t.same(await all('/resume?lastEventId=1&lastEventId=2'), ['data: none\n\n'], 'repeated: ambiguous, ignored')
  t.same(await all('/resume?lastEventId='), ['data: none\n\n'], 'empty: none (a page with no cursor yet)')
  t.same(await all('/resume', { 'last-event-id': '' }), ['data: none\n\n'], 'an empty header: none')
  t.same(await all('/resume?lastEventId=41', { 'last-event-id': '' }), ['data: after 41\n\n'], 'an empty header is absent: the cursor applies')
  t.same(await all('/resume?other=41'), ['data: none\n\n'])
  t.same(await all('/resume'), ['data: none\n\n'])

  // Without the option the query is not read.
  const plain = await startApp(t, {}, resume)
  t.same(await (await FrameReader.open(plain.url + '/resume?lastEventId=41')).all(), ['data: none\n\n'])
  await t.rejects(async () => { await Fastify().register(fastifyConduit, { lastEventIdQuery: '' }).ready() }, { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: /"lastEventIdQuery"/ })
})

t.test('heartbeats are comment frames sent while the stream is idle', async (t) => {
  const go = deferred()
  const { url } = await startApp(t, { heartbeat: 20 }, (app) => {
    app.get('/idle', (request, reply) => reply.sse(async function * () {
      yield { data: 'start' }
      await go.promise
      yield { data: 'end' }
    }))
    app.get('/no-heartbeat', (request, reply) => reply.sse(async function * () {
      await go.promise
      yield { data: 'end' }
    }, { heartbeat: false }))
  })
  const idle = await FrameReader.open(url + '/idle')
  const quiet = await FrameReader.open(url + '/no-heartbeat')
  t.equal(await idle.next(), 'data: start\n\n')
  t.equal(await idle.next(), ':\n\n', 'a heartbeat after the idle interval')
  t.equal(await idle.next(), ':\n\n', 'and again')
  go.resolve()
  const rest = await idle.all()
  t.equal(rest.at(-1), 'data: end\n\n')
  t.ok(rest.slice(0, -1).every((frame) => frame === ':\n\n'))
  t.same(await quiet.all(), ['data: end\n\n'], 'heartbeat: false sends none')
})

t.test('onResponse and request logging fire once per stream', async (t) => {
  const logs = new LogCapture()
  let responses = 0
  const { url } = await startApp(t, {}, (app) => {
    app.addHook('onResponse', async () => { responses++ })
    app.get('/once', (request, reply) => reply.sse([{ data: 'x' }, { data: 'y' }]))
  }, { logger: logs.logger })
  await (await FrameReader.open(url + '/once')).all()
  // Both come after the client read the end; a second of either would come right after.
  await eventually(() => responses > 0 && logs.lines.some((line) => line.msg === 'request completed'), 5000)
  await sleep(20)
  t.equal(responses, 1)
  t.equal(logs.lines.filter((line) => line.msg === 'request completed').length, 1)
})

t.test('a client that goes away: onRequestAbort fires once, as for any abandoned response', async (t) => {
  const logs = new LogCapture()
  let aborts = 0
  let responses = 0
  const finished = deferred()
  const { url } = await startApp(t, {}, (app) => {
    app.addHook('onRequestAbort', async (request) => { aborts++ })
    app.addHook('onResponse', async (request, reply) => { responses++ })
    app.get('/leave', async (request, reply) => {
      await reply.sse(async function * ({ signal }) {
        yield { data: 'hi' }
        await sleep(60_000, undefined, { signal }).catch(() => {})
      })
      finished.resolve()
    })
  }, { logger: logs.logger })
  const reader = await FrameReader.open(url + '/leave')
  await reader.next()
  reader.close()
  await finished.promise
  await eventually(() => aborts > 0 && logs.lines.some((line) => line.msg === 'stream closed prematurely'), 5000)
  await sleep(20)
  t.equal(aborts, 1)
  t.equal(responses, 0, 'Fastify runs onResponse only for responses that finish')
  t.equal(logs.lines.filter((line) => line.msg === 'stream closed prematurely').length, 1, 'Fastify logs the early close once')
})

t.test('maxConnections: one more stream is answered 503 with Retry-After', async (t) => {
  const { app, url } = await startApp(t, { maxConnections: 2 }, (app) => {
    app.get('/open', (request, reply) => reply.sse(async function * ({ signal }) {
      yield { data: 'open' }
      await sleep(60_000, undefined, { signal }).catch(() => {})
    }))
  })
  const a = await FrameReader.open(url + '/open')
  const b = await FrameReader.open(url + '/open')
  await a.next()
  await b.next()
  const res = await fetch(url + '/open')
  t.equal(res.status, 503)
  t.equal(res.headers.get('retry-after'), '5')
  t.equal((await res.json()).code, 'FST_ERR_CONDUIT_TOO_MANY_STREAMS')
  t.match(app.sse.stats(), { openStreams: 2, totalStreams: 2, rejectedStreams: 1 })
  a.close()
  await a.ended()
  while (app.sse.stats().openStreams > 1) await sleep(5)
  const c = await FrameReader.open(url + '/open')
  t.equal(await c.next(), 'data: open\n\n', 'a freed slot is usable again')
  b.close()
  c.close()
})

t.test('reply.sse on a reply already sent throws a coded error', async (t) => {
  const caught = deferred<unknown>()
  const { app } = await startApp(t, {}, (app) => {
    app.get('/twice', async (request, reply) => {
      await reply.send('plain')
      try {
        await reply.sse([{ data: 'x' }])
      } catch (err) {
        caught.resolve(err)
      }
      return reply
    })
  })
  await app.inject('/twice')
  t.match(await caught.promise, { code: 'FST_ERR_CONDUIT_REPLY_SENT' })
})

// The timeout fails the test if close() waits on the HTTP/2 session (Fastify's default 72 s).
t.test('HTTP/2', { timeout: 10_000 }, async (t) => {
  const finished = deferred()
  const { app, url } = await startApp(t, {}, (app) => {
    app.get('/h2', (request, reply) => reply.sse(async function * ({ signal }) {
      try {
        yield { event: 'a', data: 'one' }
        yield { id: 2, data: { two: 2 } }
        await sleep(60_000, undefined, { signal }).catch(() => {})
      } finally {
        finished.resolve()
      }
    }))
  }, { http2: true, ...fastifyDefaultClose })
  const client = http2Connect(url)
  t.teardown(() => client.close())
  const req = client.request({ [constants.HTTP2_HEADER_PATH]: '/h2', accept: 'text/event-stream' })
  req.setEncoding('utf8')
  const headers = await new Promise<Record<string, unknown>>((resolve) => req.on('response', resolve))
  t.equal(headers[':status'], 200)
  t.equal(headers['content-type'], 'text/event-stream; charset=utf-8')
  t.notOk('connection' in headers, 'no connection-specific header on HTTP/2')
  let text = ''
  for await (const chunk of req) {
    text += chunk
    if (text.endsWith('data: {"two":2}\n\n')) break
  }
  t.equal(text, 'event: a\ndata: one\n\nid: 2\ndata: {"two":2}\n\n')
  await app.close()
  await finished.promise
  t.pass('close() ends HTTP/2 streams and runs finally')
})
