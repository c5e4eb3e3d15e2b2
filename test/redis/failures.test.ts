import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import fastifyConduit from '../../lib/index.js'
import type { Channel } from '../../lib/index.js'
import { GAP_FRAME } from '../../lib/channel/channel.js'
import { redisBus } from '../../lib/redis/index.js'
import { FrameReader, freePort, LogCapture, startApp, uniqueName } from '../support/index.js'
import { deleteKeys, killRedis, needRedis, needRedisServer, REDIS_URL, startRedis, testClient, testPrefix } from './helpers.js'

// Redis failure modes: what redisBus refuses, and how its shared read loop survives failures.

t.test('a Redis Cluster client is refused when the bus is made, with a coded error', async (t) => {
  const cluster = new Cluster([{ host: '127.0.0.1', port: 7000 }], { lazyConnect: true })
  t.throws(() => redisBus({ client: cluster as never }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: /Redis Cluster/ })
  cluster.disconnect()
})

if (needRedisServer(t, 'the cluster-mode test')) {
  t.test('a Redis in cluster mode fails app.ready() with FST_ERR_CONDUIT_BUS', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'conduit-cluster-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const port = await freePort()
    const redis = await startRedis(port, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--dir', dir])
    t.teardown(() => killRedis(redis))
    const app = Fastify()
    await app.register(fastifyConduit, { bus: redisBus({ url: `redis://127.0.0.1:${port}` }) })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_ERR_CONDUIT_BUS', message: /cluster mode/ })
    await app.close()
  })
}

if (await needRedis(t)) {
  const prefix = testPrefix()
  t.teardown(() => deleteKeys(prefix))

  t.test('the read loop survives any failure of a round: logged, counted, retried', async (t) => {
    const client = testClient()
    await client.connect()
    t.teardown(() => client.quit())
    const errors: Array<{ obj: object, msg: string }> = []
    const bus = redisBus({ url: REDIS_URL, prefix })
    await bus.ready({ info () {}, warn () {}, error (obj, msg) { errors.push({ obj, msg }) } })
    t.teardown(() => bus.close())
    const name = uniqueName('throws')
    const got: string[] = []
    const listening = bus.listen(name, (id, body) => {
      if (body === 'data: bad\n\n') throw new Error('a listener failed')
      got.push(body)
    })
    await listening.ready
    await client.xadd(prefix + name, '*', 'frame', 'data: bad\n\n')
    const good = 'data: after\n\n'
    await client.xadd(prefix + name, '*', 'frame', good)
    await bus.flush?.()
    t.same(got, [good], 'the loop went on after the failure')
    t.equal(bus.stats().readFailures, 1, 'counted')
    t.match(errors, [{ msg: /reading channels from Redis failed; retrying/, obj: { err: { message: 'a listener failed' }, failures: 1, retryIn: 100 } }], 'logged, with the backoff')
  })

  t.test('a reader that fell behind MAXLEN trimming signals a gap: live streams end and resume through replay', async (t) => {
    const connectionName = uniqueName('conduit-gap')
    // The bus's reader copies this client's options, its name included: the test finds it by name.
    const client = new Redis(REDIS_URL, { connectionName })
    t.teardown(() => client.quit())
    const admin = testClient()
    await admin.connect()
    t.teardown(() => admin.quit())
    const bus = redisBus({ client, prefix })
    const logs = new LogCapture()
    const name = uniqueName('trimmed')
    let news!: Channel
    const { url } = await startApp(t, { bus }, (app) => {
      news = app.sse.channel(name, { history: 5 })
      app.get('/news', (request, reply) => reply.sse(news))
    }, { logger: logs.logger })
    const stream = await FrameReader.fetch(url + '/news')
    const first = await news.publish({ data: 'first' })
    t.same((await stream.take(1)).map((frame) => frame.id), [first], 'live')

    // Cut the reader's connection, and trim what it has not read before it reconnects (ioredis
    // waits 50 ms before its first attempt).
    const clients = String(await admin.client('LIST')).split('\n')
    const reader = clients.find((line) => line.includes(`name=${connectionName} `) && line.includes('cmd=xread'))
    const burst = admin.multi()
    for (let n = 0; n < 50; n++) burst.xadd(prefix + name, 'MAXLEN', '5', '*', 'frame', `data: ${n}\n\n`)
    await admin.client('KILL', 'ID', /\bid=(\d+)/.exec(String(reader))?.[1] as string)
    const written = (await burst.exec() as Array<[Error | null, string]>).map(([, id]) => id)

    await stream.ended()
    t.pass('the live stream ended')
    t.match(await logs.waitFor('were trimmed (MAXLEN) before this instance read them'), { channel: name, after: first })
    t.equal(bus.stats().liveGaps, 1, 'counted')
    const resumed = await FrameReader.fetch(url + '/news', { 'last-event-id': first })
    const [gap, ...replayed] = await resumed.take(6)
    t.equal(gap.raw + '\n', GAP_FRAME, 'the replay reports the gap')
    t.same(replayed.map((frame) => frame.id), written.slice(-5), 'then what Redis still holds')
    await resumed.abort()
  })
}
