import Fastify from 'fastify'
import t from 'tap'
import fastifyConduit from '../../lib/index.js'
import { redisBus } from '../../lib/redis/index.js'
import { loadIoredis } from '../../lib/redis/client.js'
import { FrameReader, freePort, LogCapture, startApp, startChannelApp, take, uniqueName } from '../support/index.js'
import { connectedClient, deleteKeys, needRedis, REDIS_URL, testClient, testPrefix } from './helpers.js'

t.test('options are checked when the bus is made', async (t) => {
  t.throws(() => redisBus(null as never), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => redisBus({ url: REDIS_URL, client: testClient() }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => redisBus({ url: '' }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => redisBus({ url: 42 as never }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => redisBus({ client: {} as never }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => redisBus({ client: null as never }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => redisBus({ prefix: 1 as never }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => redisBus({ history: 0 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => redisBus({ ttl: 0 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: /"ttl"/ })
  t.throws(() => redisBus({ ttl: '1d' as never }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.equal(redisBus().history, 1000)
  t.equal(redisBus({ history: 5 }).history, 5)
})

t.test('ioredis is loaded only when used, with a coded error when it is missing', async (t) => {
  await t.rejects(loadIoredis('ioredis-is-not-installed'), { code: 'FST_ERR_CONDUIT_MISSING_DEPENDENCY' })
  t.equal(typeof await loadIoredis(), 'function')
})

t.test('an unreachable Redis fails app.ready() with a coded error naming the URL, never its password', async (t) => {
  const port = await freePort()
  const app = Fastify()
  await app.register(fastifyConduit, { bus: redisBus({ url: `redis://user:s3cret@127.0.0.1:${port}` }) })
  const err = await app.ready().then(() => undefined, (err: Error & { code: string }) => err)
  t.equal(err?.code, 'FST_ERR_CONDUIT_BUS')
  t.match(err?.message, `redis://user:***@127.0.0.1:${port}`)
  t.notMatch(err?.message, 's3cret')
  t.match(err?.message, 'ECONNREFUSED')
  await app.close()
  t.pass('closes cleanly after a failed start')
})

t.test('an application client that cannot connect fails app.ready() too', async (t) => {
  const port = await freePort()
  const client = testClient(`redis://127.0.0.1:${port}`)
  const app = Fastify()
  await app.register(fastifyConduit, { bus: redisBus({ client }) })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_ERR_CONDUIT_BUS', message: new RegExp(`127\\.0\\.0\\.1:${port}`) })
  await app.close()
  client.disconnect()
})

if (await needRedis(t)) {
  const prefix = testPrefix()
  t.teardown(() => deleteKeys(prefix))
  const bus = (options = {}): ReturnType<typeof redisBus> => redisBus({ url: REDIS_URL, prefix, ...options })

  t.test('a bus made but never started closes at once', async (t) => {
    await bus().close()
    t.pass()
  })

  t.test('one bus shared by two apps closes with the last; then it refuses work', async (t) => {
    const shared = bus()
    const a = await startApp(t, { bus: shared })
    const b = await startApp(t, { bus: shared })
    const name = uniqueName('shared')
    await a.app.close()
    t.ok(await b.app.sse.channel(name).publish({ data: 1 }), 'still open for the other app')
    await b.app.close()
    await t.rejects(shared.publish(name, 'data: 2\n\n', 10), { code: 'FST_ERR_CONDUIT_CLOSED' })
    await t.rejects(shared.replay(name, '1-1'), { code: 'FST_ERR_CONDUIT_CLOSED' })
    await t.rejects(shared.listen(name, () => {}).ready, { code: 'FST_ERR_CONDUIT_CLOSED' })
  })

  t.test('with a client of the application: used for commands, copied for reading, never closed', async (t) => {
    const client = testClient()
    t.teardown(() => client.quit())
    const { app } = await startApp(t, { bus: redisBus({ client, prefix }) })
    const channel = app.sse.channel(uniqueName('own'))
    const subscription = channel.subscribe()
    await subscription.ready
    const id = await channel.publish({ data: 'hi' })
    t.same(await take(subscription, 1), [{ event: 'message', data: 'hi', id }])
    // Errors name where Redis is (from the client's options).
    await client.set(prefix + 'not-a-stream', 'x')
    const err = await app.sse.channel('not-a-stream').publish({ data: 1 }).catch((err: Error) => err)
    t.match(err, { code: 'FST_ERR_CONDUIT_BUS', message: /redis:\/\/127\.0\.0\.1:6379|redis:\/\/localhost:6379|redis:\/\// })
    await app.close()
    t.equal(await client.ping(), 'PONG', 'the application client is still open')
  })

  t.test('a key that is not a stream: publish, listen and replay fail with FST_ERR_CONDUIT_BUS', async (t) => {
    const client = await connectedClient(t)
    const name = uniqueName('string')
    await client.set(prefix + name, 'not a stream')
    const logs = new LogCapture()
    const { channel, url } = await startChannelApp(t, { bus: bus() }, '/s', name, { fastify: { logger: logs.logger } })
    await t.rejects(channel.publish({ data: 1 }), { code: 'FST_ERR_CONDUIT_BUS' })
    await t.rejects(channel.subscribe().ready, { code: 'FST_ERR_CONDUIT_BUS' })
    await t.rejects(channel.subscribe({ lastEventId: '1-1' }).ready, { code: 'FST_ERR_CONDUIT_BUS' })
    const direct = bus()
    await t.rejects(direct.replay(name, '0-0'), { code: 'FST_ERR_CONDUIT_BUS' }, 'from the start too')
    await direct.close()
    const stream = await FrameReader.fetch(url + '/s')
    await stream.ended()
    t.match((await logs.waitFor('channel subscription failed')).err, { code: 'FST_ERR_CONDUIT_BUS' })

    // Once the key is a stream again, the channel works: failures are not sticky.
    await client.del(prefix + name)
    const subscription = channel.subscribe({ lastEventId: '0-0' })
    await subscription.ready
    const id = await channel.publish({ data: 'ok' })
    t.same(await take(subscription, 1), [{ event: 'message', data: 'ok', id }])
    await subscription.return()
  })

  t.test('a channel subscribed while the reader is blocked on others joins at once (CLIENT UNBLOCK)', async (t) => {
    const client = await connectedClient(t)
    const unblocks = async (): Promise<number> => {
      const stats = await client.info('commandstats')
      return Number(/cmdstat_client\|unblock:calls=(\d+)/.exec(stats)?.[1] ?? 0)
    }
    const a = await startApp(t, { bus: bus() })
    const b = await startApp(t, { bus: bus() })
    const first = b.app.sse.channel(uniqueName('first')).subscribe()
    await first.ready
    const before = await unblocks()
    const name = uniqueName('second')
    const second = b.app.sse.channel(name).subscribe()
    await second.ready
    const id = await a.app.sse.channel(name).publish({ data: 'prompt' })
    t.same(await take(second, 1), [{ event: 'message', data: 'prompt', id }])
    t.ok(await unblocks() > before, 'the blocked XREAD was interrupted to add the new channel')
    await first.return()
    await second.return()
  })

  t.test('a subscriber that leaves before the bus has positioned the channel', async (t) => {
    const { app } = await startApp(t, { bus: bus() })
    const channel = app.sse.channel(uniqueName('brief'))
    const subscription = channel.subscribe()
    await subscription.return()
    await subscription.ready
    const again = channel.subscribe()
    await again.ready
    const id = await channel.publish({ data: 1 })
    t.same(await take(again, 1), [{ event: 'message', data: 1, id }])
    await again.return()
  })

  t.test('a listener stopped before its channel was positioned is never read for', async (t) => {
    const direct = bus()
    await direct.ready()
    const listening = direct.listen(uniqueName('gone'), () => t.fail('nothing should arrive'))
    listening.stop()
    await listening.ready
    await direct.close()
    t.pass()
  })

  t.test('a reply for a channel dropped while its read was in flight is ignored', async (t) => {
    const client = await connectedClient(t)
    const direct = bus()
    await direct.ready()
    t.teardown(() => direct.close())
    const dropped = uniqueName('dropped')
    const seen: string[] = []
    const first = direct.listen(dropped, (id, body) => seen.push(body))
    await first.ready
    // The reader is now blocked on `dropped`: stop listening and write to it while it waits.
    first.stop()
    await client.xadd(prefix + dropped, '*', 'frame', 'data: 1\n\n')
    // A channel listened to afterwards gets its entries: the loop went on past the stale reply.
    const kept = uniqueName('kept')
    const arrived = new Promise<string>((resolve) => direct.listen(kept, (id, body) => resolve(body)).ready.then(() =>
      client.xadd(prefix + kept, '*', 'frame', 'data: 2\n\n')))
    t.equal(await arrived, 'data: 2\n\n')
    t.same(seen, [], 'the dropped listener got nothing')
  })

  t.test('ttl: every publish renews the key\'s expiry; an expired key is a gap; ttl false keeps keys', async (t) => {
    const expiring = bus({ ttl: 60_000 })
    const { app } = await startApp(t, { bus: expiring })
    const client = testClient()
    await client.connect()
    t.teardown(() => client.disconnect())
    const channel = app.sse.channel(uniqueName('ttl'))
    const first = await channel.publish({ data: 1 })
    const pttl = await client.pttl(prefix + channel.name)
    t.ok(pttl > 0 && pttl <= 60_000, `expires within the ttl (${pttl} ms)`)
    await client.pexpire(prefix + channel.name, 5000)
    await channel.publish({ data: 'renewed' })
    t.ok(await client.pttl(prefix + channel.name) > 5000, 'renewed by the publish')
    // A key expires after ttl ms of quiet, so a later id's time is past every earlier one's; here
    // it is deleted at once: wait for Redis's clock to pass the first id's millisecond.
    const now = async (): Promise<number> => {
      const [seconds, micros] = await client.time()
      return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
    }
    while (await now() <= Number(first.split('-')[0])) await new Promise((resolve) => setTimeout(resolve, 1))
    await client.del(prefix + channel.name) // as Redis does once it expires
    const next = await channel.publish({ data: 2 })
    t.ok(expiring.compare(next, first) > 0, 'ids go on increasing (they are times)')
    const replay = await expiring.replay(channel.name, first)
    t.same([replay.complete, replay.entries.map((entry) => entry.id)], [false, [next]], 'an id from before reads as a gap')

    const { app: keeping } = await startApp(t, { bus: bus({ ttl: false }) })
    const kept = keeping.sse.channel(uniqueName('kept'))
    await kept.publish({ data: 1 })
    t.equal(await client.pttl(prefix + kept.name), -1, 'no expiry')
  })

  t.test('a channel with no entry: last() gives where it stood; a replay after it is complete unless its history may have been dropped meanwhile', async (t) => {
    const ttl = 60_000
    const direct = bus({ ttl })
    t.teardown(() => direct.close())
    const client = await connectedClient(t)
    const name = uniqueName('empty')
    const at = await direct.last?.(name) as string
    t.match(at, /^0-[1-9]\d*$/, 'a position of its own: 0-<time·2^23 + incarnation>')
    const seenAt = BigInt(at.slice(2)) >> 23n
    const epoch = BigInt(at.slice(2)) & (2n ** 23n - 1n)
    const { seconds, micros } = await client.time().then(([s, us]) => ({ seconds: Number(s), micros: Number(us) }))
    t.ok(Number(seenAt) <= seconds * 1000 + micros / 1000, 'the time Redis saw it empty')
    t.equal(await client.get(prefix + '@epoch'), String(epoch), 'the incarnation, kept at <prefix>@epoch')
    t.equal(await client.pttl(prefix + '@epoch'), -1, 'for good: one key per prefix')
    t.same(await direct.replay(name, at), { entries: [], complete: true }, 'no key yet: nothing to miss')

    const id = await direct.publish(name, 'data: 1\n\n', 10)
    t.ok(direct.compare(at, id) < 0, 'ordered before every later entry')
    t.same(await direct.replay(name, at), { entries: [{ id, body: 'data: 1\n\n', json: undefined }], complete: true }, 'what came after, exactly')
    t.same(await direct.replay(name, at, 1), { entries: [{ id, body: 'data: 1\n\n', json: undefined }], complete: true }, 'by pages too')
    t.equal(await direct.last?.(name), id, 'with entries: the newest id')

    const position = (time: bigint, incarnation: bigint): string => `0-${(time << 23n) | incarnation}`
    const earlier = position(seenAt - BigInt(ttl), epoch)
    t.equal((await direct.replay(name, earlier)).complete, false, 'its first entry a ttl or more after: an earlier history may have expired')
    t.equal((await direct.replay(uniqueName('none'), earlier)).complete, false, 'no key a ttl or more after: the same')
    const keeping = bus({ ttl: false })
    t.teardown(() => keeping.close())
    t.equal((await keeping.replay(name, earlier)).complete, true, 'ttl false: nothing expires')
    const elsewhere = position(seenAt, epoch ^ 1n)
    t.equal((await direct.replay(name, elsewhere)).complete, false, 'another incarnation of Redis: its data was lost')
    t.equal((await direct.replay(uniqueName('none'), elsewhere)).complete, false)
    await client.del(prefix + '@epoch')
    t.equal((await direct.replay(name, at)).complete, false, 'no incarnation at all: the same')
    const anew = await direct.last?.(uniqueName('anew')) as string
    t.not(BigInt(anew.slice(2)) & (2n ** 23n - 1n), 0n, 'a new one is drawn')
    const latest = await direct.last?.(uniqueName('latest')) as string
    t.equal(await direct.replay(name, latest).then((replay) => replay.complete), true, 'and positions of the new one resume exactly')

    await direct.publish(name, 'data: 2\n\n', 10)
    await client.xdel(prefix + name, id)
    t.equal((await direct.replay(name, latest)).complete, false, 'a stream that lost an entry')
    const wrong = uniqueName('string')
    await client.set(prefix + wrong, 'not a stream')
    await t.rejects(direct.replay(wrong, latest), { code: 'FST_ERR_CONDUIT_BUS' }, 'a key that is not a stream')
  })

  t.test('flush() resolves once the reader has delivered what Redis held when it was called', async (t) => {
    const client = testClient()
    await client.connect()
    t.teardown(() => client.quit())
    const direct = bus()
    await direct.ready()
    t.teardown(() => direct.close())
    const empty = direct.listen(uniqueName('empty'), () => {})
    await empty.ready
    await direct.flush?.()
    t.pass('a channel never published to has nothing to wait for')
    const name = uniqueName('flushed')
    const got: string[] = []
    const listening = direct.listen(name, (id) => got.push(id))
    await listening.ready
    // Written by another client: this bus learns of them only through its reader.
    const ids = await Promise.all([1, 2, 3].map((n) => client.xadd(prefix + name, '*', 'frame', `data: ${n}\n\n`) as Promise<string>))
    await direct.flush?.()
    t.same(got, ids, 'every entry delivered')
    await direct.flush?.()
    t.same(got, ids, 'nothing left to wait for')

    // More than one read takes (COUNT 1000), written at once: flush() waits through every read.
    const burst = client.multi()
    for (let n = 0; n < 20_000; n++) burst.xadd(prefix + name, '*', 'frame', `data: ${n}\n\n`)
    const written = (await burst.exec() as Array<[Error | null, string]>).map(([, id]) => id)
    await direct.flush?.()
    t.same(got.slice(ids.length), written, 'every entry of the burst delivered')
  })

  t.test('replay from an id still retained is exact; from a trimmed one it reports the gap', async (t) => {
    const { app } = await startApp(t, { bus: bus() })
    const channel = app.sse.channel(uniqueName('trim'), { history: 3 })
    const ids: string[] = []
    for (let n = 0; n < 250; n++) ids.push(await channel.publish({ data: n }))
    const replayBus = bus()
    const all = await replayBus.replay(channel.name, 'not-an-id')
    t.equal(all.complete, false)
    const oldest = ids.indexOf(all.entries[0].id)
    t.ok(oldest > 0, 'Redis trimmed some')
    const exact = await replayBus.replay(channel.name, ids[oldest])
    t.equal(exact.complete, true)
    t.same(exact.entries.map((entry) => entry.id), ids.slice(oldest + 1))
    const trimmed = await replayBus.replay(channel.name, ids[oldest - 1])
    t.equal(trimmed.complete, false, 'at the trim boundary: reported as a gap (Redis does not say where trimming stopped)')
    t.same(trimmed.entries.map((entry) => entry.id), ids.slice(oldest))
    const before = await replayBus.replay(channel.name, '0-0')
    t.same([before.entries.map((entry) => entry.id), before.complete], [ids.slice(oldest), false], 'from the start of a trimmed stream: a gap')
    // From the start of a stream never trimmed (XINFO: entries-added = length), or of none.
    const whole = app.sse.channel(uniqueName('whole'), { history: 3 })
    const kept = [await whole.publish({ data: 1 }), await whole.publish({ data: 2 })]
    const start = await replayBus.replay(whole.name, '0-0')
    t.same([start.entries.map((entry) => entry.id), start.complete], [kept, true], 'all of it, complete')
    t.same((await replayBus.replay(whole.name, '0-0', 1)).entries.map((entry) => entry.id), kept.slice(0, 1), 'a page')
    t.same(await replayBus.replay(uniqueName('none'), '0-0'), { entries: [], complete: true }, 'no key: nothing was published')
    await replayBus.close()
  })

  t.test('stream entries written by something else are skipped, live and in replays', async (t) => {
    const client = await connectedClient(t)
    const { app } = await startApp(t, { bus: bus() })
    const channel = app.sse.channel(uniqueName('foreign'))
    const first = await channel.publish({ data: 0 })
    const live = channel.subscribe()
    await live.ready
    await client.xadd(prefix + channel.name, '*', 'other', 'field')
    const id = await channel.publish({ data: 1 })
    t.same(await take(live, 1), [{ event: 'message', data: 1, id }])
    const replayed = channel.subscribe({ lastEventId: first })
    t.same(await take(replayed, 1), [{ event: 'message', data: 1, id }])
    await live.return()
    await replayed.return()
  })

  t.test('entry format: frame, plus json for string data; entries of the older format (frame alone) read as before', async (t) => {
    const client = await connectedClient(t)
    const logs = new LogCapture()
    const { channel, url } = await startChannelApp(t, { bus: bus() }, '/c', uniqueName('format'), { fastify: { logger: logs.logger } })
    const key = prefix + channel.name
    const text = await channel.publish({ event: 'e', data: '42' })
    const object = await channel.publish({ data: { a: 1 } })
    t.same(await client.xrange(key, '-', '+'), [
      [text, ['frame', 'event: e\ndata: 42\n\n', 'json', '"42"']],
      [object, ['frame', 'data: {"a":1}\n\n']]
    ], 'the string verbatim in the frame and as JSON beside it; other data as JSON in the frame only')

    // Before json existed, every frame held JSON, strings too: such entries read as they did.
    const old = await client.xadd(key, '*', 'frame', 'data: "hello"\n\n') as string
    // json that is not JSON (not written by a channel): streamed, but not iterated.
    const odd = await client.xadd(key, '*', 'frame', 'data: x\n\n', 'json', '{nope') as string
    const subscription = channel.subscribe({ lastEventId: text })
    t.strictSame(await take(subscription, 2), [
      { event: 'message', data: { a: 1 }, id: object },
      { event: 'message', data: 'hello', id: old }
    ])
    const stream = await FrameReader.fetch(url + '/c', { 'last-event-id': text })
    t.same((await stream.take(3)).map((frame) => [frame.id, frame.data]), [[object, '{"a":1}'], [old, '"hello"'], [odd, 'x']])
    const last = await channel.publish({ data: 'last' })
    t.strictSame(await take(subscription, 1), [{ event: 'message', data: 'last', id: last }], 'the odd one skipped')
    t.equal(logs.count('is not JSON'), 1)
    await stream.abort()
    await subscription.return()
  })

  t.test('a read that fails (a key changed type under the reader) is logged and retried', async (t) => {
    const client = await connectedClient(t)
    const logs = new LogCapture()
    const { app } = await startApp(t, { bus: bus() }, () => {}, { logger: logs.logger })
    const channel = app.sse.channel(uniqueName('retype'))
    const subscription = channel.subscribe()
    await subscription.ready
    await client.set(prefix + channel.name, 'now a string')
    // Wake the reader (a new channel unblocks it) so that it reads the changed key.
    const other = app.sse.channel(uniqueName('other')).subscribe()
    await other.ready
    const line = await logs.waitFor('reading channels from Redis failed')
    t.ok(line.err, 'with the reason')
    await client.del(prefix + channel.name)
    const id = await channel.publish({ data: 'recovered' })
    t.same(await take(subscription, 1), [{ event: 'message', data: 'recovered', id }])
    await subscription.return()
    await other.return()
  })
}
