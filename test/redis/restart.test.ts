import t from 'tap'
import type { Channel } from '../../lib/index.js'
import { GAP_FRAME } from '../../lib/channel/channel.js'
import { redisBus } from '../../lib/redis/index.js'
import { FrameReader, freePort, LogCapture, startApp, take } from '../support/index.js'
import { killRedis, needRedisServer, startRedis, testPrefix } from './helpers.js'

// Restarts a Redis of its own (never the shared one on 6379): kill -9, then a new server on
// the same port, empty as a Redis without persistence comes back.

if (needRedisServer(t, 'the Redis restart test')) {
  t.test('Redis restarted mid-stream: subscribers lose nothing published meanwhile', async (t) => {
    const port = await freePort()
    let redis = await startRedis(port)
    t.teardown(() => killRedis(redis))
    const url = `redis://127.0.0.1:${port}`
    const prefix = testPrefix()
    const logs = new LogCapture()
    const a = await startApp(t, { bus: redisBus({ url, prefix }) })
    let onB!: Channel
    const b = await startApp(t, { bus: redisBus({ url, prefix }) }, (app) => {
      onB = app.sse.channel('news')
      app.get('/news', (request, reply) => reply.sse(onB))
    }, { logger: logs.logger })
    const onA = a.app.sse.channel('news')
    const subscription = onB.subscribe()
    await subscription.ready
    const stream = await FrameReader.fetch(b.url + '/news')

    const ids = [await onA.publish({ data: 1 }), await onA.publish({ data: 2 })]
    t.same((await take(subscription, 2)).map((message) => message.id), ids)
    t.same((await stream.take(2)).map((frame) => frame.id), ids)

    await killRedis(redis)
    await logs.waitFor('lost the Redis connection')
    // Published while Redis is down: ioredis queues the command until it is back.
    const whileDown = onA.publish({ data: 3 })
    redis = await startRedis(port)
    ids.push(await whileDown)
    ids.push(await onA.publish({ data: 4 }))
    await logs.waitFor('reconnected to Redis')

    const after = await take(subscription, 2)
    t.same(after.map((message) => message.data), [3, 4], 'the iterator got what was published across the restart')
    t.same(after.map((message) => message.id), ids.slice(2))
    const frames = await stream.take(2)
    t.same(frames.map((frame) => frame.id), ids.slice(2), 'and so did the stream')

    // Redis came back empty: a client resuming from before the restart is told of the gap
    // and gets what the new Redis holds.
    const back = await FrameReader.fetch(b.url + '/news', { 'last-event-id': ids[1] })
    const [gap, ...replayed] = await back.take(3)
    t.equal(gap.raw + '\n', GAP_FRAME)
    t.same(replayed.map((frame) => frame.id), ids.slice(2))
    await back.abort()
    await stream.abort()
    await subscription.return()

    // Closing while Redis is down does not hang, nor leave a publish waiting forever.
    const outages = logs.count('lost the Redis connection')
    await killRedis(redis)
    await logs.waitFor('lost the Redis connection', outages + 1)
    const stuck = t.rejects(onA.publish({ data: 5 }), { code: 'FST_ERR_CONDUIT_CLOSED' })
    await a.app.close()
    await b.app.close()
    await stuck
    t.pass('closed while Redis was down')
  })
}
