import { once } from 'node:events'
import { Redis } from 'ioredis'
import t from 'tap'
import type { Test } from 'tap'
import { redisBus } from '../../lib/redis/index.js'
import { freePort, uniqueName } from '../support/index.js'
import { killRedis, needRedisServer, redisDir, replyDroppingProxy, shutdownRedis, startRedis, testClient } from './helpers.js'

// publish() during an outage: bounded by publishTimeout, and never stored twice. Each test
// starts a redis-server of its own (never the shared one), stops or stalls it mid-publish,
// and counts what the stream holds.

/** redisBus's default key prefix. */
const PREFIX = 'conduit:'

t.test('publishTimeout is checked', async (t) => {
  for (const publishTimeout of [0, -1, 1.5, 2 ** 31, '5000']) {
    t.throws(() => redisBus({ publishTimeout: publishTimeout as number }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: /publishTimeout/ })
  }
})

if (needRedisServer(t, 'the publish outage tests')) {
  /** A redis-server of this test, a bus on it, and a plain client to count entries. */
  async function setup (t: Test, publishTimeout: number, client?: (url: string) => Redis) {
    const port = await freePort()
    const dir = redisDir(t)
    const server = { redis: await startRedis(port, ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir]) }
    t.teardown(() => killRedis(server.redis))
    const url = `redis://127.0.0.1:${port}`
    const own = client?.(url)
    if (own !== undefined) {
      t.teardown(() => own.disconnect())
      if (own.status !== 'ready') await once(own, 'ready')
    }
    const bus = redisBus(own === undefined ? { url, publishTimeout } : { client: own, publishTimeout })
    await bus.ready()
    t.teardown(() => bus.close())
    const admin = testClient(url)
    const channel = uniqueName('outage')
    const stored = async (): Promise<string[]> => {
      if (admin.status !== 'ready') await admin.connect()
      const entries = await admin.xrange(PREFIX + channel, '-', '+')
      return entries.map(([, fields]) => fields[1])
    }
    t.teardown(() => admin.disconnect())
    return { port, dir, server, url, bus, channel, stored, own }
  }

  t.test('Redis stalled (SIGSTOP) past the bound: publish rejects at the bound, and the event is never stored', async (t) => {
    const { server, bus, channel, stored } = await setup(t, 800)
    await bus.publish(channel, 'data: before\n\n', 100)
    server.redis.kill('SIGSTOP')
    const started = Date.now()
    await t.rejects(bus.publish(channel, 'data: stalled\n\n', 100), { code: 'FST_ERR_CONDUIT_PUBLISH_TIMEOUT' })
    t.ok(Date.now() - started >= 790, 'not before the bound')
    // The command still sits in Redis's socket: it runs once Redis goes on, past its deadline.
    server.redis.kill('SIGCONT')
    // Sent on the same connection after it, so run after it.
    await bus.publish(channel, 'data: after\n\n', 100)
    t.same(await stored(), ['data: before\n\n', 'data: after\n\n'], 'the timed-out event was refused by Redis when it finally ran')
  })

  t.test('Redis stalled within the bound: publish waits, then stores the event once', async (t) => {
    const { server, bus, channel, stored } = await setup(t, 5000)
    await bus.publish(channel, 'data: before\n\n', 100)
    server.redis.kill('SIGSTOP')
    const published = bus.publish(channel, 'data: stalled\n\n', 100)
    setTimeout(() => server.redis.kill('SIGCONT'), 300)
    const id = await published
    t.same(await stored(), ['data: before\n\n', 'data: stalled\n\n'])
    t.match(id, /^\d+-\d+$/)
  })

  t.test('a reply lost with the connection: ioredis re-sends the publish, which is not stored twice', async (t) => {
    const { port, bus: unused, channel, stored } = await setup(t, 5000)
    await unused.close()
    const proxy = await replyDroppingProxy(t, port)
    const bus = redisBus({ url: proxy.url })
    await bus.ready()
    t.teardown(() => bus.close())
    await bus.publish(channel, 'data: first\n\n', 100) // Redis now has the script
    proxy.holdReplies = true
    const published = bus.publish(channel, 'data: once\n\n', 100)
    // Redis stored it; its reply is lost. Then the link drops, and ioredis reconnects and
    // sends the command again (autoResendUnfulfilledCommands).
    while ((await stored()).length < 2) await new Promise((resolve) => setTimeout(resolve, 10))
    proxy.holdReplies = false
    proxy.cut()
    const id = await published
    const admin = testClient(`redis://127.0.0.1:${port}`)
    await admin.connect()
    t.teardown(() => admin.disconnect())
    const entries = await admin.xrange(PREFIX + channel, '-', '+')
    t.same(entries.map(([, fields]) => fields[1]), ['data: first\n\n', 'data: once\n\n'], 'stored once')
    t.equal(id, entries[1][0], 'and publish() resolved to its id')
  })

  t.test('Redis down, the publish queued by the client: the timeout names why the connection is down', async (t) => {
    const { port, dir, server, bus, channel, stored } = await setup(t, 800)
    await bus.publish(channel, 'data: before\n\n', 100)
    await shutdownRedis(server.redis, port)
    const err = await bus.publish(channel, 'data: lost\n\n', 100).then(() => undefined, (err: unknown) => err as Error & { code: string })
    t.equal(err?.code, 'FST_ERR_CONDUIT_PUBLISH_TIMEOUT')
    t.match(err?.cause, { message: /ECONNREFUSED|ECONNRESET|Connection is closed/ }, 'its cause: the connection error')
    server.redis = await startRedis(port, ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir])
    await bus.publish(channel, 'data: back\n\n', 100)
    t.same(await stored(), ['data: before\n\n', 'data: back\n\n'], 'the rejected event was never stored')
  })

  t.test('Redis restarted (AOF) while the client gives up at once: publish retries, stores once, or rejects at the bound', async (t) => {
    // A client of the application's that rejects queued commands at the first failed
    // reconnection: the bus retries them itself, within publishTimeout.
    const { port, dir, server, bus, channel, stored, own } = await setup(t, 1500, (url) => {
      const client = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => 50 })
      client.on('error', () => {})
      return client
    })
    await bus.publish(channel, 'data: before\n\n', 100)
    await shutdownRedis(server.redis, port)
    const published = bus.publish(channel, 'data: across\n\n', 100)
    await new Promise((resolve) => setTimeout(resolve, 300))
    server.redis = await startRedis(port, ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir])
    await published
    t.same(await stored(), ['data: before\n\n', 'data: across\n\n'], 'stored once, after the restart')

    await shutdownRedis(server.redis, port)
    if (own?.status === 'ready') await once(own, 'close')
    const started = Date.now()
    const err = await bus.publish(channel, 'data: lost\n\n', 100).then(() => undefined, (err: unknown) => err as Error & { code: string })
    t.equal(err?.code, 'FST_ERR_CONDUIT_PUBLISH_TIMEOUT', 'rejected at the bound')
    t.ok(Date.now() - started >= 1490, 'not before it')
    t.ok(err?.cause instanceof Error, 'with the last error met as its cause')
    server.redis = await startRedis(port, ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir])
    await bus.publish(channel, 'data: back\n\n', 100)
    t.same(await stored(), ['data: before\n\n', 'data: across\n\n', 'data: back\n\n'], 'the rejected event was never stored')
  })

  t.test('a client without an offline queue refuses commands while Redis is down: retried with backoff until the bound', async (t) => {
    const { port, server, bus, channel, stored, own } = await setup(t, 400, (url) => {
      const client = new Redis(url, { enableOfflineQueue: false, retryStrategy: () => 50 })
      client.on('error', () => {})
      return client
    })
    await shutdownRedis(server.redis, port)
    // Once the client knows (a command written before would wait for the reconnection).
    if (own?.status === 'ready') await once(own, 'close')
    const err = await bus.publish(channel, 'data: refused\n\n', 100).then(() => undefined, (err: unknown) => err as Error & { code: string })
    t.equal(err?.code, 'FST_ERR_CONDUIT_PUBLISH_TIMEOUT')
    t.match(err?.cause, { message: /enableOfflineQueue/ }, 'the cause: what the client answered')
    server.redis = await startRedis(port, ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', redisDir(t)])
    t.same(await stored(), [], 'nothing stored')
  })

  t.test('publishes in flight together: each stored once, in call order, under the id it resolved to', async (t) => {
    const { bus, channel, url } = await setup(t, 5000)
    const bodies = Array.from({ length: 2000 }, (_, n) => `data: ${n}\n\n`)
    const ids = await Promise.all(bodies.map((body) => bus.publish(channel, body, 10_000)))
    const admin = testClient(url)
    await admin.connect()
    t.teardown(() => admin.disconnect())
    const entries = await admin.xrange(PREFIX + channel, '-', '+')
    t.same(entries.map(([, fields]) => fields[1]), bodies)
    t.same(entries.map(([id]) => id), ids)
  })

  t.test('a command error is not retried: FST_ERR_CONDUIT_BUS at once', async (t) => {
    const { bus, channel, url } = await setup(t, 5000)
    const admin = testClient(url)
    await admin.connect()
    t.teardown(() => admin.disconnect())
    await admin.set(PREFIX + channel, 'not a stream')
    await t.rejects(bus.publish(channel, 'data: x\n\n', 100), { code: 'FST_ERR_CONDUIT_BUS', message: /WRONGTYPE/ })
  })
}
