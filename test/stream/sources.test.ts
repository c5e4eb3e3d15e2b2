import { Readable } from 'node:stream'
import t from 'tap'
import type { SSEMessage } from '../../lib/index.js'
import { deferred, FrameReader, startApp } from '../support/index.js'

// Every source kind reply.sse accepts, read over a real socket.

const three: SSEMessage[] = [{ data: 'a' }, { event: 'x', data: 'b' }, { id: 3, data: 'c' }]
const expected = ['data: a\n\n', 'event: x\ndata: b\n\n', 'id: 3\ndata: c\n\n']

t.test('every source kind', async (t) => {
  const { url } = await startApp(t, {}, (app) => {
    app.get('/array', (request, reply) => reply.sse(three))
    app.get('/sync-generator', (request, reply) => reply.sse((function * () { yield * three })()))
    app.get('/async-generator', (request, reply) => reply.sse((async function * () { yield * three })()))
    app.get('/function', (request, reply) => reply.sse(async function * () { yield * three }))
    app.get('/function-returning-array', (request, reply) => reply.sse(() => three))
    app.get('/readable', (request, reply) => reply.sse(Readable.from(three)))
    app.get('/set', (request, reply) => reply.sse(new Set(three)))
    app.get('/awaited', async (request, reply) => {
      await reply.sse(three)
    })
  })
  for (const path of ['/array', '/sync-generator', '/async-generator', '/function', '/function-returning-array', '/readable', '/set', '/awaited']) {
    const reader = await FrameReader.open(url + path)
    t.equal(reader.response.statusCode, 200, path)
    t.same(await reader.all(), expected, path)
  }
})

t.test('a source that is not one answers 500 with a coded error', async (t) => {
  const { app } = await startApp(t, {}, (app) => {
    app.get('/number', (request, reply) => reply.sse(5 as never))
    app.get('/string', (request, reply) => reply.sse('abc' as never))
    app.get('/function-of-number', (request, reply) => reply.sse((() => 5) as never))
    app.get('/null', (request, reply) => reply.sse(null as never))
    app.get('/async-function', (request, reply) => reply.sse((async () => [{ data: 'x' }]) as never))
  })
  for (const path of ['/number', '/string', '/function-of-number', '/null', '/async-function']) {
    const res = await app.inject(path)
    t.equal(res.statusCode, 500, path)
    t.equal(res.json().code, 'FST_ERR_CONDUIT_INVALID_SOURCE', path)
  }
  // The usual slip, an async function instead of an async generator function, is named.
  t.match((await app.inject('/async-function')).json().message, /a Promise \(use an async generator function/)
  t.equal(app.sse.stats().openStreams, 0, 'nothing left open')
})

t.test('the head is flushed before the first event', async (t) => {
  const go = deferred()
  const { url } = await startApp(t, {}, (app) => {
    app.get('/slow', (request, reply) => reply.sse(async function * () {
      await go.promise
      yield { data: 'late' }
    }))
  })
  // FrameReader.open resolves on the response head, which the source has not yet allowed.
  const reader = await FrameReader.open(url + '/slow')
  t.equal(reader.response.statusCode, 200)
  t.match(reader.headers['content-type'], /^text\/event-stream/)
  go.resolve()
  t.same(await reader.all(), ['data: late\n\n'])
})

t.test('frames produced together are coalesced, a slow source still sees each at once', async (t) => {
  const step = deferred()
  const { url } = await startApp(t, {}, (app) => {
    app.get('/mixed', (request, reply) => reply.sse(async function * () {
      for (let i = 0; i < 1000; i++) yield { data: i }
      await step.promise
      yield { data: 'after' }
    }))
  })
  const reader = await FrameReader.open(url + '/mixed')
  const chunks: string[] = []
  reader.response.on('data', (chunk: string) => chunks.push(chunk))
  const frames = []
  for (let i = 0; i < 1000; i++) frames.push(await reader.next())
  t.same(frames, Array.from({ length: 1000 }, (_, i) => `data: ${i}\n\n`))
  t.ok(chunks.length < 20, `1000 events arrived in ${chunks.length} chunks`)
  step.resolve()
  t.equal(await reader.next(), 'data: after\n\n', 'an event after a pause is sent without waiting for more')
  await reader.ended()
})

t.test('a large sync source is streamed whole, batch by batch', async (t) => {
  const line = 'y'.repeat(100)
  const { url } = await startApp(t, {}, (app) => {
    app.get('/big-sync', (request, reply) => reply.sse(function * () {
      for (let i = 0; i < 20_000; i++) yield { id: i, data: line }
    }))
  })
  const frames = await (await FrameReader.open(url + '/big-sync')).all()
  t.equal(frames.length, 20_000)
  t.equal(frames[19_999], `id: 19999\ndata: ${line}\n\n`)
})
