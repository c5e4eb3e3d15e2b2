import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { deferred, fastifyDefaultClose, FrameReader, LogCapture, rawGet, startApp } from '../support/index.js'

// How a stream ends: the client goes away, the server closes, the source throws, the client
// stops reading. Each must end cleanly, run the source's finally and leak nothing.

t.test('client disconnect aborts the signal and runs the generator finally', async (t) => {
  const finished = deferred<{ aborted: boolean, returned: boolean }>()
  const sseDone = deferred()
  const { app, url } = await startApp(t, {}, (app) => {
    app.get('/forever', async (request, reply) => {
      await reply.sse(async function * ({ signal }) {
        let returned = true
        try {
          for (let i = 0; ; i++) {
            yield { id: i, data: i }
            await sleep(5, undefined, { signal }).catch(() => {})
          }
        } catch {
          returned = false
        } finally {
          finished.resolve({ aborted: signal.aborted, returned })
        }
      })
      sseDone.resolve()
    })
  })
  const reader = await FrameReader.open(url + '/forever')
  t.equal(await reader.next(), 'id: 0\ndata: 0\n\n')
  t.equal(await reader.next(), 'id: 1\ndata: 1\n\n')
  reader.close()
  t.same(await finished.promise, { aborted: true, returned: true }, 'finally ran, after return(), with the signal aborted')
  await sseDone.promise
  t.pass('reply.sse resolved')
  t.equal(app.sse.stats().openStreams, 0)
})

t.test('a source blocked in an await sees the abort through the signal', async (t) => {
  const finished = deferred<string>()
  const { url } = await startApp(t, {}, (app) => {
    app.get('/waiting', (request, reply) => reply.sse(async function * ({ signal }) {
      try {
        yield { data: 'first' }
        await sleep(60_000, undefined, { signal })
        yield { data: 'never' }
      } finally {
        finished.resolve(String(signal.reason?.name))
      }
    }))
  })
  const reader = await FrameReader.open(url + '/waiting')
  t.equal(await reader.next(), 'data: first\n\n')
  reader.close()
  t.equal(await finished.promise, 'AbortError')
})

t.test('app.close() ends every open stream promptly and resolves', async (t) => {
  let finallies = 0
  const { app, url } = await startApp(t, {}, (app) => {
    app.get('/open', (request, reply) => reply.sse(async function * ({ signal }) {
      try {
        yield { data: 'hello' }
        await sleep(60_000, undefined, { signal })
      } catch {
        // aborted by close
      } finally {
        finallies++
      }
    }))
  }, fastifyDefaultClose)
  const readers = await Promise.all(Array.from({ length: 200 }, () => FrameReader.open(url + '/open')))
  for (const reader of readers) await reader.next()
  t.equal(app.sse.stats().openStreams, 200)
  await app.close()
  await Promise.all(readers.map((reader) => reader.ended()))
  t.equal(finallies, 200, 'every source finally ran')
  t.equal(app.sse.stats().openStreams, 0)
  t.ok(readers.every((reader) => reader.response.complete), 'every response ended cleanly (not cut)')
})

t.test('app.close() ends even a source that ignores the signal', async (t) => {
  const { app, url } = await startApp(t, {}, (app) => {
    app.get('/stubborn', (request, reply) => reply.sse(async function * () {
      yield { data: 'x' }
      await sleep(500)
    }))
  }, fastifyDefaultClose)
  const reader = await FrameReader.open(url + '/stubborn')
  await reader.next()
  await app.close()
  await reader.ended()
  t.ok(reader.response.complete)
})

t.test('a source that throws is logged and ends the stream cleanly', async (t) => {
  const logs = new LogCapture()
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown): void => { unhandled.push(err) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => process.off('unhandledRejection', onUnhandled))
  const { url } = await startApp(t, {}, (app) => {
    app.get('/throws', (request, reply) => reply.sse(async function * () {
      yield { data: 'before' }
      throw new Error('database went away')
    }))
    app.get('/throws-sync', (request, reply) => reply.sse((function * () {
      yield { data: 'before' }
      throw new Error('bad row')
    })()))
  }, { logger: logs.logger })
  for (const path of ['/throws', '/throws-sync']) {
    const reader = await FrameReader.open(url + path)
    t.same(await reader.all(), ['data: before\n\n'], `${path}: what came before is delivered, then the end`)
    t.ok(reader.response.complete, `${path}: the response ended cleanly`)
  }
  const errors = logs.lines.filter((line) => line.level === 50)
  t.equal(errors.length, 2)
  t.match(errors[0], { reqId: String, msg: /source threw/, err: { message: 'database went away' } }, "through the request's logger")
  t.same(unhandled, [], 'no unhandled rejection')
})

t.test('an iterator whose return() throws is logged', async (t) => {
  const logs = new LogCapture()
  const returned = deferred()
  const { url } = await startApp(t, {}, (app) => {
    app.get('/bad-return', (request, reply) => reply.sse({
      [Symbol.asyncIterator] () {
        return {
          next: () => Promise.resolve({ done: false, value: { data: 'x' } }),
          return: () => {
            returned.resolve()
            throw new Error('cannot close')
          }
        }
      }
    }))
  }, { logger: logs.logger })
  const reader = await FrameReader.open(url + '/bad-return')
  await reader.next()
  reader.close()
  await returned.promise
  await new Promise((resolve) => setImmediate(resolve))
  t.match(logs.lines.find((line) => line.level === 50), { msg: /closing the event source threw/ })
})

t.test('a client that stops reading bounds what is pulled from the source', async (t) => {
  let pulled = 0
  const finished = deferred()
  const chunk = 'x'.repeat(1000)
  const { port } = await startApp(t, {}, (app) => {
    app.get('/firehose', (request, reply) => reply.sse(async function * () {
      try {
        // 100 MB if nothing held it back.
        for (let i = 0; i < 100_000; i++) {
          pulled += chunk.length
          yield { data: chunk }
        }
      } finally {
        finished.resolve()
      }
    }))
  })
  const heapBefore = process.memoryUsage().heapUsed
  // A raw socket that sends the request and then never reads.
  const socket = rawGet(port, '/firehose', { Accept: 'text/event-stream' })
  socket.pause()
  // Wait until the source stops being pulled: the sign that backpressure holds it.
  let last = -1
  while (pulled !== last) {
    last = pulled
    await sleep(200)
  }
  t.ok(pulled < 16 * 1024 * 1024, `pulled ${(pulled / 1024 / 1024).toFixed(1)} MB of 100 MB while the client did not read`)
  const heapGrowth = process.memoryUsage().heapUsed - heapBefore
  t.ok(heapGrowth < 32 * 1024 * 1024, `heap grew ${(heapGrowth / 1024 / 1024).toFixed(1)} MB`)
  socket.destroy()
  await finished.promise
  t.pass('the source was closed when the client went away')
})
