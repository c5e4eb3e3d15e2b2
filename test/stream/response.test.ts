import { request } from 'node:http'
import { PassThrough, Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { createBrotliCompress, createBrotliDecompress, createGunzip, createGzip } from 'node:zlib'
import fastifyCompress from '@fastify/compress'
import t from 'tap'
import { deferred, fastifyDefaultClose, FrameReader, LogCapture, rawGet, startApp } from '../support/index.js'

// How a stream owns its response inside an ordinary app: whatever the hooks and onSend
// wrappers do, the head goes out when Fastify pipes the body in, the response's own close
// ends the stream, and reply.sse settles only once the response is over.

/** A HEAD request: status and headers, and whether any body byte came. */
function head (url: string): Promise<{ status: number | undefined, headers: Record<string, unknown>, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'HEAD' }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('HEAD answers the stream head and never starts the source', async (t) => {
  let called = 0
  let generatorStarted = false
  let readableDestroyed = false
  const { app, url } = await startApp(t, { maxConnections: 2 }, (app) => {
    app.get('/function', (request, reply) => reply.sse(function * () {
      called++
      yield { data: 'x' }
    }))
    app.get('/generator', (request, reply) => reply.sse((function * () {
      generatorStarted = true
      yield { data: 'x' }
    })()))
    app.get('/readable', (request, reply) => {
      const readable = new Readable({ objectMode: true, read () { this.push({ data: 'x' }) } })
      readable.on('close', () => { readableDestroyed = true })
      return reply.sse(readable)
    })
  })
  for (let i = 0; i < 10; i++) {
    for (const path of ['/function', '/generator', '/readable']) {
      const res = await head(url + path)
      t.equal(res.status, 200)
      t.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8')
      t.equal(res.headers['cache-control'], 'no-cache, no-transform')
      t.notOk('content-length' in res.headers, 'no Content-Length claims an empty stream')
      t.equal(res.body, '')
    }
  }
  t.equal(called, 0, 'a source function is never called for HEAD')
  t.equal(generatorStarted, false)
  t.equal(readableDestroyed, true, 'a Readable is destroyed')
  t.equal(app.sse.stats().openStreams, 0)
  t.equal(app.sse.stats().totalStreams, 0, 'HEAD holds no stream')
  // Thirty HEAD requests with maxConnections: 2, and a GET still streams.
  t.same(await (await FrameReader.open(url + '/function')).all(), ['data: x\n\n'])
})

t.test('a HEAD with a source that is not one answers 500, as a GET would', async (t) => {
  const { url } = await startApp(t, {}, (app) => {
    app.get('/number', (request, reply) => reply.sse(42 as never))
  })
  t.equal((await head(url + '/number')).status, 500)
})

t.test('headers the app set are kept; Content-Type and the status are always the stream\'s', async (t) => {
  const { url } = await startApp(t, {}, (app) => {
    app.addHook('onRequest', async (request, reply) => {
      reply.header('content-type', 'application/json')
      reply.header('content-length', '10')
      reply.code(201)
    })
    app.get('/stream', (request, reply) => {
      reply.header('cache-control', 'no-cache, no-transform, private')
      reply.header('x-accel-buffering', 'yes')
      return reply.sse([{ data: 'x' }])
    })
  })
  const reader = await FrameReader.open(url + '/stream')
  t.equal(reader.response.statusCode, 200)
  t.equal(reader.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.equal(reader.headers['cache-control'], 'no-cache, no-transform, private')
  t.equal(reader.headers['x-accel-buffering'], 'yes')
  t.notOk('content-length' in reader.headers)
  t.same(await reader.all(), ['data: x\n\n'])
})

t.test('every failure of reply.sse rejects its promise; none is thrown', async (t) => {
  const seen: string[] = []
  const record = (call: () => Promise<void>): void => {
    let result: Promise<void>
    try {
      result = call()
    } catch (err) {
      seen.push('threw ' + (err as { code: string }).code)
      return
    }
    result.catch((err: { code: string }) => seen.push('rejected ' + err.code))
  }
  const { url } = await startApp(t, {}, (app) => {
    app.get('/failures', async (request, reply) => {
      record(() => reply.sse(42 as never))
      record(() => reply.sse([], { heartbeat: -1 }))
      await reply.send('done')
      record(() => reply.sse([]))
      return reply
    })
  })
  t.equal(await (await fetch(url + '/failures')).text(), 'done')
  t.same(seen, [
    'rejected FST_ERR_CONDUIT_INVALID_SOURCE',
    'rejected FST_ERR_CONDUIT_INVALID_OPTION',
    'rejected FST_ERR_CONDUIT_REPLY_SENT'
  ])
})

t.test('an onSend hook that wraps the body in a PassThrough: every event arrives', async (t) => {
  const second = deferred()
  const { url } = await startApp(t, {}, (app) => {
    app.addHook('onSend', async (request, reply, payload) =>
      payload instanceof Readable ? payload.pipe(new PassThrough()) : payload)
    app.get('/wrapped', (request, reply) => reply.sse(async function * () {
      yield { data: 'first' }
      await second.promise
      yield { data: 'second' }
    }))
  })
  const reader = await FrameReader.open(url + '/wrapped')
  t.equal(await reader.next(), 'data: first\n\n', 'the first event arrives before the source goes on')
  second.resolve()
  t.same(await reader.all(), ['data: second\n\n'])
})

const encoders = {
  gzip: { encode: createGzip, decode: createGunzip },
  br: { encode: createBrotliCompress, decode: createBrotliDecompress }
}
// A burst of 0 is one small event, produced before Fastify pipes the body to the response (the
// onSend hook is async): it went into the encoder before the stream found it, and is flushed.
for (const [encoding, { encode, decode }] of Object.entries(encoders)) {
  for (const burstLength of [0, 3]) {
    t.test(`an onSend hook that encodes the body with a node:zlib ${encoding} stream: flushed per batch, events arrive live (burst of ${burstLength})`, async (t) => {
      const burst = Array.from({ length: burstLength }, (_, i) => ({ data: String(i).repeat(40_000) }))
      const second = deferred()
      const { url } = await startApp(t, {}, (app) => {
        app.addHook('onSend', async (request, reply, payload) => {
          if (!(payload instanceof Readable)) return payload
          reply.header('content-encoding', encoding)
          const encoded = payload.pipe(encode())
          // Events flow into the encoder before Fastify pipes it to the response.
          for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
          return encoded
        })
        app.get('/encoded', (request, reply) => reply.sse(async function * () {
          yield * burst
          yield { data: 'first' }
          await second.promise
          yield { data: 'second' }
        }))
      })
      const expected = burst.map((msg) => `data: ${msg.data}\n\n`).join('') + 'data: first\n\n'
      const text = await new Promise<string>((resolve, reject) => {
        request(url + '/encoded', { headers: { 'accept-encoding': encoding } }, (res) => {
          t.equal(res.headers['content-encoding'], encoding)
          let body = ''
          const decoded = res.pipe(decode())
          decoded.on('data', (chunk: Buffer) => {
            body += chunk.toString()
            // Only once the first events were decoded does the source go on: without a flush
            // per batch this waits forever (and the test times out).
            if (body === expected) second.resolve()
          })
          decoded.on('end', () => resolve(body))
          decoded.on('error', reject)
        }).on('error', reject).end()
      })
      t.equal(text, expected + 'data: second\n\n')
    })
  }
}

t.test('@fastify/compress that would encode event streams: refused with a coded 500 before any event, nothing hangs', async (t) => {
  const logs = new LogCapture()
  const finished = deferred()
  const { app, url } = await startApp(t, { retry: 1000 }, (app) => {
    app.get('/compressed', (request, reply) => reply.sse(async function * ({ signal }) {
      try {
        yield { data: 'first' }
        await sleep(60_000, undefined, { signal })
      } finally {
        finished.resolve()
      }
    }))
    // A sync source produces a batch and more before Fastify pipes the body: none of it goes out.
    app.get('/sync', (request, reply) => reply.sse(function * () {
      for (let i = 0; i < 5000; i++) yield { id: i, data: 'x'.repeat(50) }
    }))
  }, { logger: logs.logger, before: (app) => app.register(fastifyCompress, { customTypes: /^text\//, threshold: 0 }) })
  for (const path of ['/compressed', '/sync']) {
    const response = await fetch(url + path, { headers: { 'accept-encoding': 'gzip' } })
    t.equal(response.status, 500, 'an error status: EventSource stops instead of reconnecting forever')
    t.equal(response.headers.get('content-encoding'), null)
    t.equal(response.headers.get('x-accel-buffering'), null, 'none of the stream headers on the error reply')
    t.equal(response.headers.get('cache-control'), null)
    t.match(await response.json(), { statusCode: 500, code: 'FST_ERR_CONDUIT_UNFLUSHABLE_ENCODING' })
  }
  await finished.promise
  t.equal(logs.lines.filter((line) => line.msg === 'fastify-conduit: event stream refused' &&
    (line.err as { code?: string }).code === 'FST_ERR_CONDUIT_UNFLUSHABLE_ENCODING' && line.level === 50).length, 2)
  t.equal(app.sse.stats().openStreams, 0)
})

t.test('retry and heartbeats go out before the source\'s first event', async (t) => {
  const go = deferred()
  const { url } = await startApp(t, { heartbeat: 20, retry: 1234 }, (app) => {
    app.get('/quiet', (request, reply) => reply.sse(async function * () {
      await go.promise
      yield { data: 'late' }
    }))
    const quiet = app.sse.channel('quiet')
    app.get('/quiet-channel', (request, reply) => reply.sse(quiet))
  })
  for (const path of ['/quiet', '/quiet-channel']) {
    const reader = await FrameReader.open(url + path)
    t.equal(await reader.next(), 'retry: 1234\n\n', `${path}: retry at once`)
    t.equal(await reader.next(), ':\n\n', `${path}: a heartbeat while the source has nothing yet`)
    reader.close()
  }
  go.resolve()
})

t.test('a request with Connection: close gets no keep-alive, and the connection closes after the stream', async (t) => {
  const { port } = await startApp(t, {}, (app) => {
    app.get('/once', (request, reply) => reply.sse([{ data: 'a' }]))
  })
  const socket = rawGet(port, '/once', { Connection: 'close' })
  let text = ''
  socket.on('data', (chunk: Buffer) => { text += chunk.toString() })
  await new Promise((resolve) => socket.on('close', resolve))
  t.match(text, /\r\nconnection: close\r\n/i)
  t.notMatch(text, /keep-alive/i)
  t.match(text, /data: a\n\n/)
})

t.test('@fastify/compress with its defaults leaves event streams alone', async (t) => {
  const { url } = await startApp(t, {}, (app) => {
    app.get('/stream', (request, reply) => reply.sse([{ data: 'plain' }]))
  }, { before: (app) => app.register(fastifyCompress, { threshold: 0 }) })
  const reader = await FrameReader.open(url + '/stream', { 'accept-encoding': 'gzip, br' })
  t.notOk('content-encoding' in reader.headers)
  t.same(await reader.all(), ['data: plain\n\n'])
})

t.test('a client gone while an async hook ran: the source is never started', async (t) => {
  const hookEntered = deferred()
  const clientGone = deferred()
  const handled = deferred()
  let called = false
  const { app, port } = await startApp(t, {}, (app) => {
    app.addHook('preHandler', async (request) => {
      hookEntered.resolve()
      await clientGone.promise
      // Give the server a turn to see the socket close.
      while (!request.raw.socket.destroyed) await sleep(1)
    })
    app.get('/late', async (request, reply) => {
      await reply.sse(function * () {
        called = true
        yield { data: 'x' }
      })
      handled.resolve()
    })
  })
  const socket = rawGet(port, '/late')
  await hookEntered.promise
  socket.destroy()
  clientGone.resolve()
  await handled.promise
  t.equal(called, false)
  t.equal(app.sse.stats().openStreams, 0)
})

t.test('app.close() is bounded by closeGracePeriod when a client stops reading', async (t) => {
  const big = 'x'.repeat(64 * 1024)
  const finished = deferred()
  const { app, port } = await startApp(t, { closeGracePeriod: 200 }, (app) => {
    app.get('/flood', (request, reply) => reply.sse(async function * () {
      try {
        for (;;) yield { data: big }
      } finally {
        finished.resolve()
      }
    }))
    // A finite source that ended, with its tail still queued behind the same kind of client.
    app.get('/finite', (request, reply) => reply.sse(Array.from({ length: 200 }, () => ({ data: big }))))
  }, fastifyDefaultClose)
  const sockets = ['/flood', '/finite'].map((path) => {
    const socket = rawGet(port, path)
    // Read the head only, then stop reading.
    socket.once('data', () => socket.pause())
    return socket
  })
  while (app.sse.stats().openStreams < 2 || app.sse.stats().queuedBytes === 0) await sleep(5)
  const closed = app.close()
  const bound = new AbortController()
  const outcome = await Promise.race([closed.then(() => 'closed'), sleep(10_000, 'pending', { signal: bound.signal })])
  bound.abort()
  t.equal(outcome, 'closed', 'close() resolved with the clients still not reading')
  await finished.promise
  t.equal(app.sse.stats().openStreams, 0)
  for (const socket of sockets) socket.destroy()
})
