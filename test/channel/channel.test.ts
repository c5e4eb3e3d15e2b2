import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify from 'fastify'
import t from 'tap'
import fastifyConduit, { memoryBus } from '../../lib/index.js'
import { BusError } from '../../lib/errors.js'
import { GAP_FRAME } from '../../lib/channel/channel.js'
import type { Channel } from '../../lib/channel/channel.js'
import { kAttach } from '../../lib/stream/sink.js'
import type { StreamSink } from '../../lib/stream/sink.js'
import { eventually, FrameReader, LogCapture, startApp, startChannelApp, take } from '../support/index.js'
import type { Test } from './suite.js'
import { ManualBus, nextTurn } from './manual-bus.js'

/** An app on a new ManualBus with the channel 'room', streamed by GET /room; returns the bus too. */
async function appWith (t: Test, logs?: LogCapture): Promise<Awaited<ReturnType<typeof startChannelApp>> & { bus: ManualBus }> {
  const bus = new ManualBus()
  return { bus, ...await startChannelApp(t, { bus }, '/room', 'room', logs === undefined ? {} : { fastify: { logger: logs.logger } }) }
}

t.test('a replay that ran ahead of live delivery: the overlap is skipped, nothing is lost', async (t) => {
  const { bus, channel, url } = await appWith(t)
  const ids = [await channel.publish({ data: 1 }), await channel.publish({ data: 2 }), await channel.publish({ data: 3 })]

  // The replay holds 2 and 3 although live delivery has not reached them yet.
  const subscription = channel.subscribe({ lastEventId: ids[0] })
  await subscription.ready
  const stream = await FrameReader.fetch(url + '/room', { 'last-event-id': ids[0] })
  t.same((await stream.take(2)).map((frame) => frame.data), ['2', '3'])
  t.same((await take(subscription, 2)).map((message) => message.data), [2, 3])

  // Live now catches up with 1..3 (skipped: already given) ...
  bus.deliver('room')
  await nextTurn()
  // ... then goes past them: 4 and 5 come live, each once.
  ids.push(await channel.publish({ data: 4 }))
  bus.deliver('room')
  ids.push(await channel.publish({ data: 5 }))
  bus.deliver('room')
  t.same((await take(subscription, 2)).map((message) => message.id), ids.slice(3))
  t.same((await stream.take(2)).map((frame) => frame.id), ids.slice(3))
  await stream.abort()
  await subscription.return()
})

t.test('a batch that holds both replayed and new entries: only the new ones are written', async (t) => {
  const { bus, channel, url } = await appWith(t)
  const first = await channel.publish({ data: 1 })
  await channel.publish({ data: 2 })
  const subscription = channel.subscribe({ lastEventId: first })
  await subscription.ready
  const stream = await FrameReader.fetch(url + '/room', { 'last-event-id': first })
  t.same((await stream.take(1)).map((frame) => frame.data), ['2'])
  const third = await channel.publish({ data: 3 })
  bus.deliver('room') // 1, 2 and 3 in one turn
  t.same((await take(subscription, 2)).map((message) => message.data), [2, 3])
  t.same((await stream.take(1)).map((frame) => frame.id), [third])
  await stream.abort()
  await subscription.return()
})

t.test('live entries that arrive during the replay are held, then deduplicated against it', async (t) => {
  const { bus, channel, url } = await appWith(t)
  const first = await channel.publish({ data: 1 })
  bus.deliver('room')
  bus.holdReplays()
  const subscription = channel.subscribe({ lastEventId: first })
  const stream = await FrameReader.fetch(url + '/room', { 'last-event-id': first })
  await channel.publish({ data: 2 })
  bus.deliver('room')
  await nextTurn() // 2 is flushed: held by the joining subscribers
  await channel.publish({ data: 3 })
  bus.deliver('room') // 3 arrived but is not flushed yet when the replay returns
  bus.releaseReplays() // the replay holds 2 and 3 as well
  await subscription.ready
  await channel.publish({ data: 4 })
  bus.deliver('room')
  t.same((await take(subscription, 3)).map((message) => message.data), [2, 3, 4])
  t.same((await stream.take(3)).map((frame) => frame.data), ['2', '3', '4'])
  await stream.abort()
  await subscription.return()
})

t.test('a subscriber without Last-Event-ID gets the entries that arrived while it joined', async (t) => {
  const { bus, channel } = await appWith(t)
  const early = channel.subscribe()
  const published = channel.publish({ data: 1 })
  bus.deliver('room') // before `early` has finished joining: it holds 1
  await published
  t.same((await take(early, 1)).map((message) => message.data), [1])
  await early.return()
})

t.test('joining subscribers past maxBufferedBytes: one reading a replay lets the held entries go and reads them from the bus; one that is not is dropped', async (t) => {
  const bus = new ManualBus()
  const { channel, app, url } = await startChannelApp(t, { bus, maxBufferedBytes: 1000 }, '/room', 'room')
  const first = await channel.publish({ data: 0 })
  bus.holdReplays()
  const subscription = channel.subscribe({ lastEventId: first })
  const stream = await FrameReader.fetch(url + '/room', { 'last-event-id': first })
  const ids: string[] = []
  for (let n = 0; n < 3; n++) {
    ids.push(await channel.publish({ data: 'z'.repeat(400) }))
    bus.deliver('room')
    await nextTurn()
  }
  bus.releaseReplays()
  t.same((await take(subscription, 3)).map((message) => message.id), ids, 'all of it, from the bus')
  t.same((await stream.take(3)).map((frame) => frame.id), ids)
  ids.push(await channel.publish({ data: 'live' }))
  bus.deliver('room')
  t.same((await take(subscription, 1)).map((message) => message.id), ids.slice(3), 'then live')
  t.same((await stream.take(1)).map((frame) => frame.id), ids.slice(3))
  t.equal(app.sse.stats().slowDisconnects, 0)
  await subscription.return()
  await stream.abort()
  while (app.sse.stats().openStreams > 0) await nextTurn()
  t.equal(bus.listeners('room'), 0)

  // Without a replay there is nothing to read again: held past the bound, it is dropped.
  bus.holdListening()
  const waiting = channel.subscribe()
  const waitingStream = await FrameReader.fetch(url + '/room')
  for (let n = 0; n < 3; n++) {
    await channel.publish({ data: 'z'.repeat(400) })
    bus.deliver('room')
    await nextTurn()
  }
  await t.rejects(waiting.next(), { code: 'FST_ERR_CONDUIT_SLOW_SUBSCRIBER' })
  await waitingStream.ended()
  t.equal(app.sse.stats().slowDisconnects, 2)
  bus.releaseListening()
  await waiting.ready
  t.equal(bus.listeners('room'), 0, 'nobody left: the channel stopped listening')
})

t.test('a subscriber that leaves while it joins: nothing is written, the channel stops listening', async (t) => {
  const { bus, app, channel, url } = await appWith(t)
  const first = await channel.publish({ data: 1 })
  bus.holdReplays()
  const subscription = channel.subscribe({ lastEventId: first })
  const stream = await FrameReader.fetch(url + '/room', { 'last-event-id': first })
  t.equal(bus.listeners('room'), 1)
  await subscription.return()
  await stream.abort()
  while (app.sse.stats().openStreams > 0) await nextTurn()
  bus.releaseReplays()
  await subscription.ready
  t.equal(bus.listeners('room'), 0)
  t.same(await subscription.next(), { done: true, value: undefined })
})

t.test('a replay bigger than maxBufferedBytes waits for the iterator instead of failing it', async (t) => {
  const bus = new ManualBus()
  const { app } = await startApp(t, { bus, maxBufferedBytes: 1000 })
  const channel = app.sse.channel('big')
  const first = await channel.publish({ data: 0 })
  for (let n = 0; n < 5; n++) await channel.publish({ data: 'w'.repeat(400) })
  const subscription = channel.subscribe({ lastEventId: first })
  await subscription.ready
  t.equal((await take(subscription, 5)).length, 5)
  t.equal(app.sse.stats().slowDisconnects, 0)
  await subscription.return()
})

t.test('a history trimmed past a slow replay: the subscriber is dropped (it resumes, and learns of the gap, with its last id)', async (t) => {
  const bus = new ManualBus()
  const { app } = await startApp(t, { bus, maxBufferedBytes: 1000 })
  const channel = app.sse.channel('trimmed')
  const ids: string[] = []
  for (let n = 0; n < 250; n++) ids.push(await channel.publish({ data: n }))
  const subscription = channel.subscribe({ lastEventId: ids[0] })
  await subscription.ready
  t.same((await take(subscription, 1)).map((message) => message.id), [ids[1]])
  bus.entries.get('trimmed')?.splice(0, 200) // trimmed while the first page is still being read
  const received: unknown[] = []
  await t.rejects((async () => { for await (const message of subscription) received.push(message.data) })(), { code: 'FST_ERR_CONDUIT_SLOW_SUBSCRIBER' })
  t.ok(received.length < 99, 'cut off before the next page')
  t.equal(app.sse.stats().slowDisconnects, 1)
})

t.test('a long replay after an unknown id: the gap first, then every page', async (t) => {
  const { channel, url } = await appWith(t)
  const ids: string[] = []
  for (let n = 0; n < 250; n++) ids.push(await channel.publish({ data: n }))
  const stream = await FrameReader.fetch(url + '/room', { 'last-event-id': 'unknown' })
  const [gap, ...frames] = await stream.take(251)
  t.equal(gap.raw + '\n', GAP_FRAME)
  t.same(frames.map((frame) => frame.id), ids)
  const subscription = channel.subscribe({ lastEventId: 'unknown' })
  await subscription.ready
  t.equal(subscription.gap, true)
  t.same((await take(subscription, 250)).map((message) => message.id), ids)
  await stream.abort()
  await subscription.return()
})

t.test('an iterator that leaves in the middle of its paced replay stops it', async (t) => {
  const bus = new ManualBus()
  const { app } = await startApp(t, { bus, maxBufferedBytes: 1000 })
  const channel = app.sse.channel('left')
  const ids: string[] = []
  for (let n = 0; n < 250; n++) ids.push(await channel.publish({ data: 'v'.repeat(100) }))
  const subscription = channel.subscribe({ lastEventId: ids[0] })
  await subscription.ready
  t.same((await take(subscription, 1)).map((message) => message.id), [ids[1]])
  await subscription.return()
  t.ok(await eventually(() => bus.listeners('left') === 0, 5000), 'it left the channel')
  t.equal(app.sse.stats().sentEvents < 50, true, 'the replay stopped where the reader did')
})

t.test('a stream that left while its replay was failing ends quietly', async (t) => {
  const logs = new LogCapture()
  const { bus, app, channel, url } = await appWith(t, logs)
  const first = await channel.publish({ data: 1 })
  bus.holdReplays()
  const stream = await FrameReader.fetch(url + '/room', { 'last-event-id': first })
  await stream.abort()
  while (app.sse.stats().openStreams > 0) await nextTurn()
  bus.failReplay = new BusError('replay failed')
  bus.releaseReplays()
  await nextTurn()
  t.equal(logs.count('channel subscription failed'), 0, 'nobody to tell')
  t.equal(bus.listeners('room'), 0)
})

t.test('an iterator drains a long queue in order (the consumed part is compacted away)', async (t) => {
  const { bus, channel } = await appWith(t)
  const subscription = channel.subscribe()
  await subscription.ready
  for (let n = 0; n < 3000; n++) await channel.publish({ data: n })
  bus.deliver('room')
  const data = (await take(subscription, 3000)).map((message) => message.data)
  t.same(data, Array.from({ length: 3000 }, (_, n) => n))
  await subscription.return()
})

t.test('a bus that cannot listen: iterators reject, streams end with a log line, the next subscriber retries', async (t) => {
  const logs = new LogCapture()
  const { bus, channel, url } = await appWith(t, logs)
  bus.failListen = new BusError('redis is down')
  const subscription = channel.subscribe()
  await t.rejects(subscription.ready, { code: 'FST_ERR_CONDUIT_BUS' })
  await t.rejects(subscription.next(), { code: 'FST_ERR_CONDUIT_BUS' })
  t.same(await subscription.next(), { done: true, value: undefined })
  const waiting = channel.subscribe()
  const pending = waiting.next() // a consumer already waiting gets the error too
  await t.rejects(pending, { code: 'FST_ERR_CONDUIT_BUS' })

  const stream = await FrameReader.fetch(url + '/room')
  await stream.ended()
  const line = await logs.waitFor('channel subscription failed')
  t.equal((line.err as { code: string }).code, 'FST_ERR_CONDUIT_BUS')

  bus.failListen = undefined
  const retry = channel.subscribe()
  await retry.ready
  await channel.publish({ data: 'back' })
  bus.deliver('room')
  t.same((await take(retry, 1)).map((message) => message.data), ['back'])
  await retry.return()
})

t.test('a replay that fails ends the subscriber the same way', async (t) => {
  const { bus, channel } = await appWith(t)
  bus.failReplay = new BusError('replay failed')
  const subscription = channel.subscribe({ lastEventId: '1-1' })
  await t.rejects(subscription.ready, { code: 'FST_ERR_CONDUIT_BUS' })
})

t.test('bus entries that are not channel frames are neither streamed nor iterated, and are logged', async (t) => {
  const bus = memoryBus()
  const logs = new LogCapture()
  const { channel, url } = await startChannelApp(t, { bus }, '/mixed', 'mixed', { fastify: { logger: logs.logger } })
  const first = await channel.publish({ data: 0 })
  const subscription = channel.subscribe()
  await subscription.ready
  const stream = await FrameReader.fetch(url + '/mixed')
  // Written to the bus by something other than a channel: streamed as they are, each would
  // corrupt the stream (merge with the next event, forge one, or carry a field of its own).
  const foreign = [
    'not a frame',
    'event: x\ndata: 1\n',
    'data: 1\n\nevent: forged\ndata: 2\n\n',
    'data: 1\nid: forged\n\n',
    'data: 1\nretry: 1\n\n',
    'data: 1\r\n\n',
    'event: x\n\n',
    'event: x',
    'data: 1\nx',
    'data: 1',
    ''
  ]
  for (const body of foreign) await bus.publish('mixed', body, 1000)
  // A well-formed frame whose data is not JSON: clients get it; iterators cannot read it back.
  const broken = await bus.publish('mixed', 'data: {broken\n\n', 1000)
  // JSON over several data lines: read as a client joins them.
  const lines = await bus.publish('mixed', 'event: list\ndata: [1,\ndata: 2]\n\n', 1000)
  const good = await channel.publish({ data: 'good' })
  t.strictSame(await take(subscription, 2), [{ event: 'list', data: [1, 2], id: lines }, { event: 'message', data: 'good', id: good }])
  t.same((await stream.take(3)).map((frame) => [frame.id, frame.data]), [[broken, '{broken'], [lines, '[1,\n2]'], [good, 'good']])
  t.equal(logs.count('not a channel frame'), foreign.length)
  t.equal(logs.count('is not JSON'), 1)
  // In a replay, too.
  const replayed = channel.subscribe({ lastEventId: first })
  t.strictSame(await take(replayed, 2), [{ event: 'list', data: [1, 2], id: lines }, { event: 'message', data: 'good', id: good }])
  const resumed = await FrameReader.fetch(url + '/mixed', { 'last-event-id': first })
  t.same((await resumed.take(3)).map((frame) => [frame.id, frame.data]), [[broken, '{broken'], [lines, '[1,\n2]'], [good, 'good']])
  t.equal(logs.count('not a channel frame'), foreign.length * 3, 'logged again by each replay')
  await stream.abort()
  await resumed.abort()
  await subscription.return()
  await replayed.return()
})

t.test('closing: joining and settling subscribers end too; a closed channel ends new streams at once', async (t) => {
  const { bus, channel, url } = await appWith(t)
  const first = await channel.publish({ data: 1 })
  await channel.publish({ data: 2 })
  const settling = channel.subscribe({ lastEventId: first })
  const settlingStream = await FrameReader.fetch(url + '/room', { 'last-event-id': first })
  await settling.ready
  await settlingStream.take(1)
  bus.holdReplays()
  const joining = channel.subscribe({ lastEventId: first })
  const joiningStream = await FrameReader.fetch(url + '/room', { 'last-event-id': first })
  channel.close()
  await settlingStream.ended()
  await joiningStream.ended()
  t.same((await take(settling, 5)).map((message) => message.data), [2], 'what was queued, then done')
  t.same(await joining.next(), { done: true, value: undefined })
  bus.releaseReplays()

  const late = await FrameReader.fetch(url + '/room') // still streams the closed channel

  await late.ended()
  t.same(late.frames, [], 'ended at once')
})

t.test('a stream that ended before the channel attached is stopped and not registered', async (t) => {
  const { bus, channel } = await appWith(t)
  let stopped = 0
  const sink = { ended: true, context: { signal: new AbortController().signal }, stop: () => { stopped++ } } as unknown as StreamSink
  await channel[kAttach](sink)
  t.equal(stopped, 1)
  t.equal(bus.listeners('room'), 0)
})

t.test('the server closing while a replay is pending ends the subscriber', async (t) => {
  const { bus, app, channel } = await appWith(t)
  const first = await channel.publish({ data: 1 })
  bus.holdReplays()
  const joining = channel.subscribe({ lastEventId: first })
  const closing = app.close()
  bus.releaseReplays()
  await closing
  await joining.ready
  t.same(await joining.next(), { done: true, value: undefined })
})

t.test('a channel nothing references any more (no subscriber, not kept by the application) is forgotten; its name makes a new one, with the history on the bus', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const bus = memoryBus()
  let live: WeakRef<Channel> | undefined
  const { app, url } = await startApp(t, { bus }, (app) => {
    app.get('/live', (request, reply) => {
      // Not kept by the application: only its subscriber's stream holds it.
      const channel = app.sse.channel('live-room')
      live = new WeakRef(channel)
      return reply.sse(channel)
    })
  })
  const stream = await FrameReader.fetch(url + '/live')
  const made = await (async () => {
    // A per-room channel, as a handler makes it: used, then dropped.
    const room = app.sse.channel('room-42', { history: 5 })
    const subscription = room.subscribe()
    await subscription.ready
    const id = await room.publish({ data: 'kept on the bus' })
    await take(subscription, 1)
    await subscription.return()
    return { id, ref: new WeakRef(room) }
  })()
  const kept = app.sse.channel('kept', { history: 5 })
  // deref() keeps its target alive until the end of the turn: collect first, then look.
  let collected = false
  for (let n = 0; n < 100 && !collected; n++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    gc()
    collected = made.ref.deref() === undefined
  }
  t.ok(collected, 'collected: the registry did not hold it')
  t.not(live?.deref(), undefined, 'a channel with a subscriber stays')
  await app.sse.channel('live-room').publish({ data: 'still live' })
  t.same((await stream.take(1)).map((frame) => frame.data), ['still live'])
  await stream.abort()
  await new Promise((resolve) => setTimeout(resolve, 10)) // its name leaves the registry
  const again = app.sse.channel('room-42', { history: 6 })
  t.same((await take(again.subscribe({ lastEventId: '0-0' }), 1)).map((message) => message.data), ['kept on the bus'])
  t.equal(app.sse.channel('kept', { history: 5 }), kept, 'one the application keeps stays')
  t.throws(() => app.sse.channel('kept', { history: 6 }), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
})

t.test('the bus follows the app: ready() on app.ready(), close() on app.close(), a failing ready fails startup', async (t) => {
  const bus = new ManualBus()
  const app = Fastify()
  await app.register(fastifyConduit, { bus })
  await app.ready()
  t.equal(bus.readyCalls, 1)
  await app.close()
  t.equal(bus.closeCalls, 1)

  const failing = new ManualBus()
  failing.failReady = new BusError('cannot reach Redis at redis://example:6379')
  const broken = Fastify()
  await broken.register(fastifyConduit, { bus: failing })
  await t.rejects(async () => { await broken.ready() }, { code: 'FST_ERR_CONDUIT_BUS' })
  await broken.close()
})

t.test('plugin options: bus and maxBufferedBytes are checked at registration', async (t) => {
  for (const bus of [null, {}, 'redis', { ...memoryBus(), ready: 1 }, Object.assign(new ManualBus(), { history: 0 })]) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(fastifyConduit, { bus: bus as never }) }, { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  }
  for (const maxBufferedBytes of [0, -1, 1.5, '1MB', Infinity]) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(fastifyConduit, { maxBufferedBytes: maxBufferedBytes as never }) }, { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  }
  const app = Fastify()
  await app.register(fastifyConduit, { bus: new ManualBus(), maxBufferedBytes: 1024 })
  await app.ready()
  t.equal(app.sse.channel('x').name, 'x')
  await app.close()
})
