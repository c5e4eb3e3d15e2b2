// A client that stops reading a fast, endless stream must not hold app.close(): queued bytes get
// a short grace period, then the connection is destroyed.
import t from 'tap'
import { memoryBus } from '../../lib/index.js'
import type { Bus, Channel } from '../../lib/index.js'
import { redisBus } from '../../lib/redis/index.js'
import { connectClient, deferred, eventually, fastifyDefaultClose, FrameReader, LogCapture, parseFrame, RawSubscriber, startApp, uniqueName, within } from '../support/index.js'
import { deleteKeys, REDIS_URL, redisReachable, REQUIRE_REDIS, testPrefix } from '../redis/helpers.js'

const BIG = 'x'.repeat(64 * 1024)

for (const protocol of ['http1', 'http2'] as const) {
  t.test(`${protocol} · app.close() with a client that stopped reading`, async (t) => {
    const finished = deferred()
    const { app } = await startApp(t, {}, (app) => {
      app.get('/firehose', (request, reply) => reply.sse(async function * () {
        try {
          for (let i = 0; ; i++) yield { id: String(i), data: BIG }
        } finally {
          finished.resolve()
        }
      }))
    }, { http2: protocol === 'http2', ...fastifyDefaultClose })
    const client = connectClient(app, protocol, 10_000)

    const res = await client.request('/firehose', 'GET', {})
    t.equal(res.status, 200, 'status 200')
    res.body.pause()
    // The socket and the client's buffers fill within milliseconds; then bytes wait on the server.
    t.ok(await eventually(() => app.sse.stats().queuedBytes > 0, 5_000), 'the stream is backed up behind the client')

    const closing = app.close()
    t.ok(await within(closing, 10_000), 'app.close() resolves within 10 s')
    t.ok(await within(finished.promise, 10_000), "the source's finally ran")
    // Whatever failed, let the process exit.
    client.destroy()
    await closing
  })
}

// Events whose publish() resolved before app.close() was called are acknowledged: every
// subscriber on this instance gets them before its stream ends. (A channel delivers in batches
// on the next event-loop turn, and redisBus reads them back from Redis: the close flushes
// both before ending the streams.) Large events keep redisBus's reader busy well after the
// last publish() resolved.
const BURST = 20
interface Case { bus: () => Bus, subscribers: number, size: number }
const cases: Record<string, Case> = { memoryBus: { bus: memoryBus, subscribers: 500, size: 0 } }
if (REQUIRE_REDIS || await redisReachable()) {
  const prefix = testPrefix()
  t.teardown(() => deleteKeys(prefix))
  const bus = (): Bus => redisBus({ url: REDIS_URL, prefix })
  cases.redisBus = { bus, subscribers: 500, size: 0 }
  cases['redisBus, 128 KiB events'] = { bus, subscribers: 5, size: 128 * 1024 }
} else {
  t.skip(`redisBus · a burst published just before app.close(): needs Redis at ${REDIS_URL} (set REDIS_URL)`, () => {})
}
for (const [name, { bus, subscribers: count, size }] of Object.entries(cases)) {
  t.test(`${name} · a burst published just before app.close() reaches every subscriber, then the end`, async (t) => {
    let news!: Channel
    // Room and time for the whole burst in every stream: slow subscribers are not the subject.
    const { app, port } = await startApp(t, { bus: bus(), maxBufferedBytes: 64 * 1024 * 1024, closeGracePeriod: 30_000 }, (app) => {
      news = app.sse.channel(uniqueName('news'))
      app.get('/news', (request, reply) => reply.sse(news))
    })
    const subscribers = Array.from({ length: count }, () => new RawSubscriber(port, '/news'))
    t.teardown(() => { for (const subscriber of subscribers) subscriber.close() })
    await Promise.all(subscribers.map((subscriber) => subscriber.head))
    // Every subscriber is live once it got an event published after it connected.
    await news.publish({ data: 'ready' })
    await Promise.all(subscribers.map((subscriber) => subscriber.reader.take(1)))

    const expected = Array.from({ length: BURST }, (_, i) => `${i}:${'x'.repeat(size)}`)
    await Promise.all(expected.map((data) => news.publish({ data })))
    await app.close()
    const received = await Promise.all(subscribers.map(async (subscriber) =>
      (await subscriber.reader.all()).map((frame) => parseFrame(frame).data)))
    const complete = received.filter((frames) => JSON.stringify(frames) === JSON.stringify(expected))
    t.equal(complete.length, count, `${complete.length} of ${count} subscribers got the whole burst, then the end`)
    const incomplete = received.find((frames) => !complete.includes(frames))
    t.same(incomplete?.map((data) => data?.slice(0, data.indexOf(':'))), undefined, 'what one that did not got')
  })
}

// A bus that cannot deliver (Redis down) holds the close no longer than closeGracePeriod; one
// whose flush fails is logged, and the close goes on.
const stuckFlushes: Record<string, () => Promise<void>> = {
  'never settles': () => new Promise(() => {}),
  fails: () => Promise.reject(new Error('the bus is down'))
}
for (const [name, flush] of Object.entries(stuckFlushes)) {
  t.test(`a bus flush that ${name} does not hold app.close()`, async (t) => {
    const inner = memoryBus()
    const bus: Bus = {
      history: inner.history,
      ready: (log) => inner.ready(log),
      publish: (...args) => inner.publish(...args),
      listen: (...args) => inner.listen(...args),
      replay: (...args) => inner.replay(...args),
      compare: (a, b) => inner.compare(a, b),
      close: () => inner.close(),
      flush
    }
    const logs = new LogCapture()
    const { app, url } = await startApp(t, { bus, closeGracePeriod: 200 }, (app) => {
      const news = app.sse.channel('news')
      app.get('/news', (request, reply) => reply.sse(news))
    }, { logger: logs.logger })
    const reader = await FrameReader.fetch(url + '/news')
    t.ok(await eventually(() => app.sse.stats().openStreams === 1, 5_000), 'subscribed')
    t.ok(await within(app.close(), 5_000), 'app.close() resolved')
    await reader.ended()
    t.pass('the stream ended')
    t.equal(logs.count('could not deliver pending channel events'), name === 'fails' ? 1 : 0)
  })
}
