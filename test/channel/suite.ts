import { once } from 'node:events'
import { FormatRegistry, Type } from '@sinclair/typebox'
import { EventSource } from 'eventsource'
import type { EventSourceMessage } from 'eventsource-parser'
import type { test } from 'tap'
import type { Bus, Channel, ChannelMessage } from '../../lib/index.js'
import { GAP_FRAME } from '../../lib/channel/channel.js'
import { firstMismatch, jsonRoundTrip, random, randomName, randomString, randomValue, sameJson, wellFormed } from '../wire/property.js'
import type { Expected } from '../wire/property.js'
import { eventually, EventReader, FrameReader, LogCapture, RawSubscriber, startApp, startChannelApp, take, uniqueName } from '../support/index.js'
import type { Frame } from '../support/index.js'

/** How the suite gets buses: the memory bus, or Redis. */
export interface BusKit {
  /** A new bus. */
  create (options?: { history?: number, ttl?: number | false }): Bus
  /**
   * A bus sharing channels with `bus`, for a second Fastify instance: the same object for the
   * memory bus, another connection to the same Redis and prefix for Redis.
   */
  peer (bus: Bus): Bus
}

/** tap's test object, as a subtest callback receives it. */
export type Test = Parameters<Parameters<typeof test>[0]>[0]

const Headline = Type.Object({ title: Type.String(), rank: Type.Optional(Type.Integer()) })
const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })
const Order = Type.Object({ userId: Type.String(), n: Type.Integer() })
const Notice = Type.Object({ text: Type.String() })
type Orders = Channel<{ order: typeof Order, notice: typeof Notice }>

/** The data of the next `count` events an EventSource dispatches (of type `message`). */
function collect (source: EventSource, count: number): Promise<string[]> {
  const received: string[] = []
  return new Promise((resolve) => {
    source.addEventListener('message', (event) => {
      received.push(event.data)
      if (received.length === count) resolve(received)
    })
  })
}

function dataOf (frames: Frame[]): unknown[] {
  return frames.map((frame) => frame.data === undefined ? undefined : JSON.parse(frame.data))
}

/**
 * The channel behaviour every bus must give, run by test/channel/memory.test.ts against
 * memoryBus() and by test/redis/channel.test.ts against redisBus().
 */
export function channelSuite (t: Test, kit: BusKit): void {
  t.test('publish resolves to strictly increasing ids; subscribers get { event, data, id }', async (t) => {
    const bus = kit.create()
    const { app } = await startApp(t, { bus })
    const news = app.sse.channel(uniqueName('news'), { schema: { headline: Headline, done: Done } })
    const subscription = news.subscribe()
    await subscription.ready
    const first = await news.publish({ event: 'headline', data: { title: 'SSE ships', rank: 1 } })
    const second = await news.publish({ event: 'done', data: { reason: 'stop' } })
    t.type(first, 'string')
    t.ok(bus.compare(first, second) < 0, 'ids increase')
    t.same(await take(subscription, 2), [
      { event: 'headline', data: { title: 'SSE ships', rank: 1 }, id: first },
      { event: 'done', data: { reason: 'stop' }, id: second }
    ])
    t.equal(subscription.gap, false)
    const stats = app.sse.stats()
    t.equal(stats.publishedEvents, 2)
    t.equal(stats.sentEvents, 2)
    await subscription.return()
  })

  t.test('reply.sse(channel): every client gets the same frames, EventSource sees the events', async (t) => {
    const bus = kit.create()
    let news!: Channel<{ headline: typeof Headline }>
    const { url } = await startApp(t, { bus }, (app) => {
      news = app.sse.channel(uniqueName('news'), { schema: { headline: Headline } })
      app.get('/news', (request, reply) => reply.sse(news))
    })
    // Make the channel live on this instance first: clients that then connect join at once.
    const warm = news.subscribe()
    await warm.ready
    const a = await FrameReader.fetch(url + '/news')
    const b = await FrameReader.fetch(url + '/news')
    t.equal(a.status, 200)
    t.match(a.contentType, /^text\/event-stream/)
    const source = new EventSource(url + '/news')
    t.teardown(() => source.close())
    await once(source, 'open')
    const received: MessageEvent[] = []
    const twoEvents = new Promise<void>((resolve) => {
      source.addEventListener('headline', (event) => {
        received.push(event)
        if (received.length === 2) resolve()
      })
    })

    const one = await news.publish({ event: 'headline', data: { title: 'one' } })
    // Properties the schema does not declare are not sent, as with Fastify's serialization.
    const two = await news.publish({ event: 'headline', data: { title: 'two', rank: 2, extra: true } as never })
    const framesA = await a.take(2)
    const framesB = await b.take(2)
    t.same(framesA.map((frame) => frame.raw), [
      `id: ${one}\nevent: headline\ndata: {"title":"one"}\n`,
      `id: ${two}\nevent: headline\ndata: {"title":"two","rank":2}\n`
    ])
    t.same(framesB, framesA, 'the same bytes to every client')
    await twoEvents
    t.same(received.map((event) => [event.lastEventId, JSON.parse(event.data)]), [
      [one, { title: 'one' }],
      [two, { title: 'two', rank: 2 }]
    ])
    await a.abort()
    await b.abort()
    await warm.return()
  })

  t.test('Last-Event-ID replays what came after it, then live: no gap, no duplicate at the seam', async (t) => {
    const bus = kit.create()
    const { channel, url } = await startChannelApp(t, { bus }, '/seam', uniqueName('seam'))
    const ids: string[] = []
    for (let n = 1; n <= 5; n++) ids.push(await channel.publish({ event: 'n', data: n }))

    // Publish while the subscriber is still fetching its replay: these events reach it both
    // in the replay and live, and must be delivered once.
    const subscription = channel.subscribe({ lastEventId: ids[1] })
    const during = [channel.publish({ event: 'n', data: 6 }), channel.publish({ event: 'n', data: 7 })]
    ids.push(...await Promise.all(during))
    await subscription.ready
    ids.push(await channel.publish({ event: 'n', data: 8 }))
    const messages = await take(subscription, 6)
    t.same(messages.map((message) => message.data), [3, 4, 5, 6, 7, 8])
    t.same(messages.map((message) => message.id), ids.slice(2))
    t.equal(subscription.gap, false)

    // The same over HTTP: a client reconnecting with Last-Event-ID.
    const stream = await FrameReader.fetch(url + '/seam', { 'last-event-id': ids[4] })
    const racing = channel.publish({ event: 'n', data: 9 })
    ids.push(await racing)
    const frames = await stream.take(4)
    t.same(dataOf(frames), [6, 7, 8, 9])
    t.same(frames.map((frame) => frame.id), ids.slice(5))
    ids.push(await channel.publish({ event: 'n', data: 10 }))
    t.same(dataOf(await stream.take(1)), [10])
    t.same((await take(subscription, 2)).map((message) => message.data), [9, 10])
    await stream.abort()
    await subscription.return()
  })

  t.test('a Last-Event-ID older than the history, or unknown, replays all retained and signals the gap', async (t) => {
    const bus = kit.create()
    const { channel, url } = await startChannelApp(t, { bus }, '/gap', uniqueName('gap'), { channel: { history: 3 } })
    const ids: string[] = []
    // Redis trims approximately (by whole nodes of entries): publish well past the history.
    for (let n = 1; n <= 250; n++) ids.push(await channel.publish({ data: n }))

    const old = channel.subscribe({ lastEventId: ids[0] })
    await old.ready
    t.equal(old.gap, true, 'the first event is no longer retained')
    const retained = await bus.replay(channel.name, 'unknown')
    t.equal(retained.complete, false)
    t.ok(retained.entries.length >= 3, 'at least the history is retained')
    t.same(retained.entries.at(-1)?.id, ids.at(-1))
    const replayed = await take(old, retained.entries.length)
    t.same(replayed.map((message) => message.id), retained.entries.map((entry) => entry.id), 'everything retained, in order')
    await old.return()

    const stream = await FrameReader.fetch(url + '/gap', { 'last-event-id': 'no-such-id' })
    const [gap, ...frames] = await stream.take(1 + retained.entries.length)
    t.equal(gap.raw + '\n', GAP_FRAME, 'a comment frame says events were missed')
    t.same(frames.map((frame) => frame.id), retained.entries.map((entry) => entry.id))
    await stream.abort()

    const upToDate = channel.subscribe({ lastEventId: ids.at(-1) })
    await upToDate.ready
    t.equal(upToDate.gap, false, 'the newest id: nothing missed')
    const next = await channel.publish({ data: 'next' })
    t.same(await take(upToDate, 1), [{ event: 'message', data: 'next', id: next }])
    await upToDate.return()
  })

  t.test('a channel never published to: an id is unknown, so a gap with nothing to replay', async (t) => {
    const bus = kit.create()
    const { app } = await startApp(t, { bus })
    const channel = app.sse.channel(uniqueName('empty'))
    const subscription = channel.subscribe({ lastEventId: '1-1' })
    await subscription.ready
    t.equal(subscription.gap, true)
    const id = await channel.publish({ data: 1 })
    t.same(await take(subscription, 1), [{ event: 'message', data: 1, id }])
    await subscription.return()
  })

  t.test('schema: an invalid payload or undeclared event rejects with a code and sends nothing', async (t) => {
    const bus = kit.create()
    const { app } = await startApp(t, { bus })
    const news = app.sse.channel(uniqueName('typed'), { schema: { headline: Headline } })
    const subscription = news.subscribe()
    await subscription.ready
    await t.rejects(news.publish({ event: 'headline', data: { title: 42 } } as never), { code: 'FST_ERR_CONDUIT_INVALID_DATA' })
    await t.rejects(news.publish({ event: 'other', data: {} } as never), { code: 'FST_ERR_CONDUIT_UNDECLARED_EVENT' })
    await t.rejects(news.publish({ event: 'headline', data: { title: 'x' }, id: '7' } as never), { code: 'FST_ERR_CONDUIT_INVALID_ID' })
    await t.rejects(news.publish({ event: 'headline', data: { title: 'x' }, retry: 5 } as never), { code: 'FST_ERR_CONDUIT_INVALID_MESSAGE' })
    await t.rejects(news.publish({ comment: 'hi' } as never), { code: 'FST_ERR_CONDUIT_INVALID_MESSAGE' })
    await t.rejects(news.publish({} as never), { code: 'FST_ERR_CONDUIT_INVALID_MESSAGE' })
    await t.rejects(news.publish(null as never), { code: 'FST_ERR_CONDUIT_INVALID_MESSAGE' })
    const id = await news.publish({ event: 'headline', data: { title: 'valid' } })
    t.same(await take(subscription, 1), [{ event: 'headline', data: { title: 'valid' }, id }], 'only the valid one was sent')
    t.equal(app.sse.stats().publishedEvents, 1)
    await subscription.return()
  })

  t.test('without a schema: a string verbatim, anything else JSON; events may have no data; names are checked', async (t) => {
    const bus = kit.create()
    const { channel, url } = await startChannelApp(t, { bus }, '/free', uniqueName('free'))
    const warm = channel.subscribe()
    await warm.ready
    const stream = await FrameReader.fetch(url + '/free')
    const ids = [
      await channel.publish({ data: 'line one\r\nline two' }),
      await channel.publish({ event: 'ping' }),
      await channel.publish({ event: 'obj', data: { nested: [1, 'two', null] } }),
      await channel.publish({ event: 'num', data: '42' }),
      await channel.publish({ data: '' })
    ]
    await t.rejects(channel.publish({ event: 'bad\nname', data: 1 }), { code: 'FST_ERR_CONDUIT_INVALID_EVENT_NAME' })
    await t.rejects(channel.publish({ data: 10n }), { code: 'FST_ERR_CONDUIT_UNSERIALIZABLE_DATA' })
    t.same((await stream.take(5)).map((frame) => frame.raw), [
      `id: ${ids[0]}\ndata: line one\ndata: line two\n`,
      `id: ${ids[1]}\nevent: ping\ndata: \n`,
      `id: ${ids[2]}\nevent: obj\ndata: {"nested":[1,"two",null]}\n`,
      `id: ${ids[3]}\nevent: num\ndata: 42\n`,
      `id: ${ids[4]}\ndata: \n`
    ])
    // Exactly what was published: the CRLF kept, the string '42' a string, '' not undefined.
    t.strictSame(await take(warm, 5), [
      { event: 'message', data: 'line one\r\nline two', id: ids[0] },
      { event: 'ping', data: undefined, id: ids[1] },
      { event: 'obj', data: { nested: [1, 'two', null] }, id: ids[2] },
      { event: 'num', data: '42', id: ids[3] },
      { event: 'message', data: '', id: ids[4] }
    ])
    await stream.abort()
    await warm.return()
  })

  t.test('without a schema, a channel sends a string as reply.sse does: live, replayed, resumed; subscribe() gives back each value exactly', async (t) => {
    const bus = kit.create()
    const values: unknown[] = ['hello', '{"a":1}', '42', 'true', 'null', '"quoted"', 'a\r\nb\rc\nd', '', ' lead', 'é😀\u2028', { a: 1 }, 42, null, false, ['x', 2]]
    const { channel, url } = await startChannelApp(t, { bus }, '/channel', uniqueName('plain'), {
      routes: (app) => app.get('/direct', (request, reply) => reply.sse(values.map((data) => ({ data }))))
    })
    const warm = channel.subscribe()
    await warm.ready
    const live = new EventSource(url + '/channel')
    t.teardown(() => live.close())
    const liveData = collect(live, values.length)
    await once(live, 'open')
    const ids: string[] = []
    for (const data of values) ids.push(await channel.publish({ data }))

    const direct = new EventSource(url + '/direct')
    t.teardown(() => direct.close())
    const expected = await collect(direct, values.length)
    direct.close()
    t.same(expected.slice(0, 3), ['hello', '{"a":1}', '42'], 'reply.sse writes strings verbatim')
    t.strictSame(await liveData, expected, 'live: what reply.sse sends')

    // A client that reconnects after the first event: replayed, then resumed live.
    const resumed = await FrameReader.fetch(url + '/channel', { 'last-event-id': ids[0] })
    const frames = await resumed.take(values.length - 1)
    t.strictSame(frames.map((frame) => frame.data ?? ''), expected.slice(1), 'replayed after Last-Event-ID: the same')
    const next = await channel.publish({ data: 'after' })
    t.strictSame(await resumed.take(1), [{ raw: `id: ${next}\ndata: after\n`, id: next, data: 'after' }], 'then live')
    await resumed.abort()

    const published = values.map((data, i) => ({ event: 'message', data, id: ids[i] }))
    t.strictSame(await take(warm, values.length), published, 'subscribe(): exactly what was published')
    const replayed = channel.subscribe({ lastEventId: ids[0] })
    t.strictSame(await take(replayed, values.length - 1), published.slice(1), 'and in a replay')
    await replayed.return()
    await warm.return()
  })

  t.test('property: random payloads give one event each, with its name, id and data, live and replayed; subscribe() gives each back exactly', async (t) => {
    // As test/schema/roundtrip.test.ts: an application that accepts fast-json-stringify's
    // unescaped strings. Whatever the serializer writes, it stays inside its event.
    FormatRegistry.Set('unsafe', () => true)
    const Raw = Type.Object({ text: Type.String({ format: 'unsafe' }) })
    const Note = Type.Object({ text: Type.String(), tags: Type.Array(Type.String()) })
    const bus = kit.create()
    let free!: Channel
    let typed!: Channel<{ raw: typeof Raw, note: typeof Note }>
    const { url } = await startApp(t, { bus }, (app) => {
      free = app.sse.channel(uniqueName('random'))
      typed = app.sse.channel(uniqueName('random-typed'), { schema: { raw: Raw, note: Note } })
      app.get('/free', (request, reply) => reply.sse(free))
      app.get('/typed', (request, reply) => reply.sse(typed))
    })
    const iterator = free.subscribe()
    await iterator.ready
    const streams = [await EventReader.fetch(url + '/free'), await EventReader.fetch(url + '/typed')]
    const next = random(7)
    const count = 120
    const expected: Expected[][] = [[], []]
    const published: Array<{ event: string, data: unknown, id: string }> = []
    const ids: string[][] = [[], []]
    for (let i = 0; i < count; i++) {
      // Event names as any store keeps them: Redis holds UTF-8, where a lone surrogate is lost.
      const event = next() < 0.7 ? randomName(next, 8).toWellFormed() : undefined
      const data = randomValue(next)
      const id = await free.publish({ event, data })
      ids[0].push(id)
      published.push({ event: event ?? 'message', data: jsonRoundTrip(data), id })
      expected[0].push({ event: event === '' ? undefined : event, id, data: typeof data === 'string' ? wellFormed(data) : sameJson(data) })

      const text = randomString(next, 30)
      const raw = next() < 0.5
      const typedId = raw
        ? await typed.publish({ event: 'raw', data: { text } })
        : await typed.publish({ event: 'note', data: { text, tags: [randomString(next, 5)] } })
      ids[1].push(typedId)
      expected[1].push({ event: raw ? 'raw' : 'note', id: typedId, data: raw ? wellFormed(`{"text":"${text}"}`) : (data) => JSON.parse(data).text === text })
    }
    // A last event on each: anything forged before it would shift it out of place.
    const end = await free.publish({ event: 'end', data: 'end' })
    ids[0].push(end)
    expected[0].push({ event: 'end', id: end, data: 'end' })
    const typedEnd = await typed.publish({ event: 'note', data: { text: 'end', tags: [] } })
    ids[1].push(typedEnd)
    expected[1].push({ event: 'note', id: typedEnd, data: '{"text":"end","tags":[]}' })
    const check = (label: string, want: Expected[], got: EventSourceMessage[]): void => {
      const mismatch = firstMismatch(want, got)
      if (mismatch === -1) t.pass(label)
      else t.fail(`${label}: first difference at event ${mismatch}`, { found: got[mismatch], wanted: want[mismatch] })
    }
    for (const [n, stream] of streams.entries()) {
      check(`live, ${n === 0 ? 'no schema' : 'schema'}`, expected[n], await stream.take(count + 1))
      await stream.abort()
    }
    // Replayed after a Last-Event-ID in the middle: the rest, the same way.
    const from = 50
    for (const [n, path] of ['/free', '/typed'].entries()) {
      const replay = await EventReader.fetch(url + path, { 'last-event-id': ids[n][from] })
      check(`replayed, ${n === 0 ? 'no schema' : 'schema'}`, expected[n].slice(from + 1), await replay.take(count - from))
      await replay.abort()
    }
    t.strictSame(await take(iterator, count), published, 'subscribe(): each message exactly as published')
    const replayed = free.subscribe({ lastEventId: ids[0][from] })
    t.strictSame(await take(replayed, count - from - 1), published.slice(from + 1), 'and replayed')
    await replayed.return()
    await iterator.return()
  })

  t.test('a name is one channel: the same options return it, other options are an error', async (t) => {
    const bus = kit.create()
    const { app } = await startApp(t, { bus })
    const name = uniqueName('room')
    const room = app.sse.channel(name, { schema: { headline: Headline }, history: 10 })
    t.equal(app.sse.channel(name, { schema: { headline: Headline }, history: 10 }), room)
    // A schema written inline (a new object per call) is still the same schema.
    t.equal(app.sse.channel(name, { schema: { headline: Type.Object({ title: Type.String(), rank: Type.Optional(Type.Integer()) }) }, history: 10 }), room)
    t.equal(room.name, name)
    t.throws(() => app.sse.channel(name, { schema: { headline: Headline }, history: 11 }), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
    t.throws(() => app.sse.channel(name, { schema: { headline: Done }, history: 10 }), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
    t.throws(() => app.sse.channel(name, { schema: { headline: Headline, done: Done }, history: 10 }), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
    t.throws(() => app.sse.channel(name, { schema: { done: Headline }, history: 10 }), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
    t.throws(() => app.sse.channel(name, { history: 10 }), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
    t.throws(() => app.sse.channel(name, { schema: { headline: Headline }, history: 10, maxBufferedBytes: 1 }), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
    const done = app.sse.channel(uniqueName('done'), { schema: { done: Done } })
    const inlineDone = (): typeof Done => Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })
    t.equal(app.sse.channel(done.name, { schema: { done: inlineDone() } }), done, 'compared deeply, arrays too')
    t.throws(() => app.sse.channel(done.name, { schema: { done: Type.Object({ reason: Type.Union([Type.Literal('stop')]) }) } }), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
    t.throws(() => app.sse.channel(done.name, { schema: { done: Type.Unsafe({ ...inlineDone(), required: { 0: 'reason' } }) } }), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
    const plain = app.sse.channel(uniqueName('plain'))
    t.equal(app.sse.channel(plain.name), plain, 'no options: the defaults')
    t.throws(() => app.sse.channel(plain.name, { schema: { headline: Headline } }), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
    t.throws(() => app.sse.channel(''), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
    t.throws(() => app.sse.channel(42 as never), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
    t.throws(() => app.sse.channel('x', null as never), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
    t.throws(() => app.sse.channel('x', { history: 0 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
    t.throws(() => app.sse.channel('x', { history: 1.5 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
    t.throws(() => app.sse.channel('x', { maxBufferedBytes: 0 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
    t.throws(() => app.sse.channel('x', { schema: {} }), { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' })
    t.throws(() => room.subscribe({ lastEventId: 5 as never }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  })

  t.test('two instances sharing the bus: publish on A, subscribers on B receive; B replays what a reconnecting client missed', async (t) => {
    const busA = kit.create()
    const busB = kit.peer(busA)
    const name = uniqueName('shared')
    const a = await startApp(t, { bus: busA })
    let onB!: Channel<{ headline: typeof Headline }>
    const b = await startApp(t, { bus: busB }, (app) => {
      onB = app.sse.channel(name, { schema: { headline: Headline } })
      app.get('/news', (request, reply) => reply.sse(onB))
    })
    const onA = a.app.sse.channel(name, { schema: { headline: Headline } })
    const warm = onB.subscribe()
    await warm.ready

    const stream = await FrameReader.fetch(b.url + '/news')
    const source = new EventSource(b.url + '/news')
    t.teardown(() => source.close())
    await once(source, 'open')
    const sourceIds: string[] = []
    const sawFive = new Promise<void>((resolve) => source.addEventListener('headline', (event) => {
      sourceIds.push(event.lastEventId)
      if (sourceIds.length === 5) resolve()
    }))

    const ids = [
      await onA.publish({ event: 'headline', data: { title: 'one' } }),
      await onA.publish({ event: 'headline', data: { title: 'two' } })
    ]
    const seen = await stream.take(2)
    t.same(seen.map((frame) => frame.id), ids)
    t.same(dataOf(seen), [{ title: 'one' }, { title: 'two' }])
    await stream.abort()

    // The client is away while A publishes three more; it comes back to B with its last id.
    ids.push(await onA.publish({ event: 'headline', data: { title: 'three' } }))
    ids.push(await onA.publish({ event: 'headline', data: { title: 'four' } }))
    const back = await FrameReader.fetch(b.url + '/news', { 'last-event-id': ids[1] })
    ids.push(await onA.publish({ event: 'headline', data: { title: 'five' } }))
    const missed = await back.take(3)
    t.same(missed.map((frame) => frame.id), ids.slice(2), 'exactly what was missed, then live')
    t.same(dataOf(missed), [{ title: 'three' }, { title: 'four' }, { title: 'five' }])
    await sawFive
    t.same(sourceIds, ids, 'a client that stayed connected got all five')
    t.equal(a.app.sse.stats().publishedEvents, 5)
    t.equal(b.app.sse.stats().publishedEvents, 0)
    source.close()
    await back.abort()
    await warm.return()
  })

  t.test('1,000 subscribers on one channel all receive every event, in order', async (t) => {
    const bus = kit.create()
    const { channel, app, port } = await startChannelApp(t, { bus, maxConnections: 2000 }, '/crowd', uniqueName('crowd'))
    const warm = channel.subscribe()
    await warm.ready
    const subscribers: RawSubscriber[] = []
    t.teardown(() => { for (const subscriber of subscribers) subscriber.close() })
    for (let i = 0; i < 1000; i++) subscribers.push(new RawSubscriber(port, '/crowd'))
    await Promise.all(subscribers.map((subscriber) => subscriber.head))
    t.equal(app.sse.stats().openStreams, 1000)

    const ids: string[] = []
    for (let n = 0; n < 20; n++) {
      // Some in one event-loop turn (one shared Buffer), some apart.
      if (n % 5 === 0) ids.push(...await Promise.all([channel.publish({ data: n }), channel.publish({ data: ++n })]))
      else ids.push(await channel.publish({ data: n }))
    }
    const received = await Promise.all(subscribers.map((subscriber) => subscriber.reader.take(ids.length)))
    const expected = ids.join(',')
    t.equal(received.filter((frames) => frames.map((frame) => frame.id).join(',') === expected).length, 1000,
      'every subscriber got every id in order')
    t.same(dataOf(received[999]), Array.from({ length: ids.length }, (_, n) => n))
    t.equal(app.sse.stats().sentEvents, 1000 * ids.length + ids.length)
    await warm.return()
  })

  t.test('a subscriber that stops reading is dropped past maxBufferedBytes, and counted; the others are not held back', async (t) => {
    const bus = kit.create()
    const maxBufferedBytes = 256 * 1024
    const { channel, app, port } = await startChannelApp(t, { bus, maxBufferedBytes }, '/slow', uniqueName('slow'))
    const warm = channel.subscribe()
    await warm.ready
    const slow = new RawSubscriber(port, '/slow')
    const healthy = new RawSubscriber(port, '/slow')
    t.teardown(() => { slow.close(); healthy.close() })
    await Promise.all([slow.head, healthy.head])
    slow.socket.pause()

    const payload = 'x'.repeat(32 * 1024)
    let published = 0
    let maxQueued = 0
    // The socket buffers of the kernel fill first, then the server's queue: publish until the
    // slow one is dropped (the bound below only stops a broken implementation from looping).
    while (app.sse.stats().slowDisconnects === 0 && published < 5000) {
      await channel.publish({ data: payload })
      published++
      await take(warm, 1)
      await healthy.reader.waitFor(published)
      maxQueued = Math.max(maxQueued, app.sse.stats().queuedBytes)
    }
    t.equal(app.sse.stats().slowDisconnects, 1, 'dropped and counted')
    t.ok(maxQueued <= maxBufferedBytes + payload.length * 2, `the server never queued much more than the bound (max ${maxQueued})`)
    // A paused socket does not see the server close it until it reads again.
    slow.socket.resume()
    await slow.reader.ended()
    t.pass('the slow client was disconnected')
    await channel.publish({ data: 'after' })
    const frames = await healthy.reader.waitFor(published + 1)
    t.equal(frames.length, published + 1, 'the healthy one got everything')
    t.equal(app.sse.stats().openStreams, 1)
    await warm.return()
  })

  t.test('an iterator that stops pulling gets FST_ERR_CONDUIT_SLOW_SUBSCRIBER instead of growing', async (t) => {
    const bus = kit.create()
    const { app } = await startApp(t, { bus })
    const channel = app.sse.channel(uniqueName('lazy'), { maxBufferedBytes: 10_000 })
    const lazy = channel.subscribe()
    const eager = channel.subscribe()
    await Promise.all([lazy.ready, eager.ready])
    const payload = 'y'.repeat(1000)
    for (let n = 0; n < 12; n++) {
      await channel.publish({ data: payload })
      await take(eager, 1)
    }
    await t.rejects(lazy.next(), { code: 'FST_ERR_CONDUIT_SLOW_SUBSCRIBER' })
    t.same(await lazy.next(), { done: true, value: undefined }, 'then it is done')
    t.same(await lazy.return(), { done: true, value: undefined })
    t.equal(app.sse.stats().slowDisconnects, 1)
    await eager.return()
  })

  t.test('subscriptions end on abort, on break, on channel.close() and on app.close(); then publish rejects', async (t) => {
    const bus = kit.create()
    let room!: Channel
    const { app, url } = await startApp(t, { bus }, (app) => {
      room = app.sse.channel(uniqueName('room'))
      app.get('/room', (request, reply) => reply.sse(room))
    })
    const controller = new AbortController()
    const aborted = room.subscribe({ signal: controller.signal })
    await aborted.ready
    const pending = aborted.next()
    controller.abort()
    t.same(await pending, { done: true, value: undefined })

    const early = new AbortController()
    early.abort()
    const never = room.subscribe({ signal: early.signal })
    await never.ready
    t.same(await never.next(), { done: true, value: undefined })

    const looped: Array<ChannelMessage<undefined>> = []
    const loop = (async () => {
      // eslint-disable-next-line no-unreachable-loop -- what `break` does to the iterator is the test
      for await (const message of room.subscribe()) {
        looped.push(message)
        break
      }
    })()
    const open = room.subscribe()
    await open.ready
    const stream = await FrameReader.fetch(url + '/room')
    await room.publish({ data: 1 })
    await loop
    t.equal(looped.length, 1)
    t.same(dataOf(await stream.take(1)), [1])

    room.close()
    room.close()
    t.same(await take(open, 2), [{ event: 'message', data: 1, id: looped[0].id }], 'what was queued, then done')
    await stream.ended()
    t.pass('the stream ended')
    await t.rejects(room.publish({ data: 2 }), { code: 'FST_ERR_CONDUIT_CLOSED' })
    const after = room.subscribe()
    await after.ready
    t.same(await after.next(), { done: true, value: undefined })
    const again = app.sse.channel(room.name)
    t.not(again, room, 'a closed channel is forgotten: the name makes a new one')

    const live = again.subscribe()
    await live.ready
    const late = again.subscribe({ lastEventId: looped[0].id })
    await app.close()
    t.same(await live.next(), { done: true, value: undefined }, 'app.close() ends subscriptions')
    t.same(await late.next(), { done: true, value: undefined })
    t.throws(() => app.sse.channel('new'), { code: 'FST_ERR_CONDUIT_CLOSED' })
    await t.rejects(again.publish({ data: 3 }), { code: 'FST_ERR_CONDUIT_CLOSED' })
  })

  t.test('where(): each stream and iterator gets only what its predicate selects, replayed and live, as the very bytes of the channel', async (t) => {
    const bus = kit.create()
    let orders!: Orders
    const { app, url } = await startApp(t, { bus }, (app) => {
      orders = app.sse.channel(uniqueName('orders'), { schema: { order: Order, notice: Notice } })
      // The authorization pattern: the user from the request, the predicate per subscriber.
      app.get<{ Params: { user: string } }>('/orders/:user', (request, reply) =>
        reply.sse(orders.where((message) => message.event === 'notice' || message.data.userId === request.params.user)))
      app.get('/all', (request, reply) => reply.sse(orders))
    })
    const warm = orders.subscribe()
    await warm.ready
    const all = await FrameReader.fetch(url + '/all')
    const ann = await FrameReader.fetch(url + '/orders/ann')
    const bob = await FrameReader.fetch(url + '/orders/bob')
    const published: Array<{ user: string | undefined, id: string }> = []
    const publish = async (user: string | undefined, n: number): Promise<void> => {
      const id = user === undefined
        ? await orders.publish({ event: 'notice', data: { text: `notice ${n}` } })
        : await orders.publish({ event: 'order', data: { userId: user, n } })
      published.push({ user, id })
    }
    // Some in one event-loop turn (one batch: the filters select within it), some apart.
    await Promise.all([publish('ann', 1), publish('bob', 2), publish('ann', 3), publish(undefined, 4)])
    await publish('bob', 5)
    await publish('ann', 6)
    const everything = await all.take(6)
    const framesFor = (user: string): string[] => everything
      .filter((frame) => published.find((p) => p.id === frame.id)?.user !== (user === 'ann' ? 'bob' : 'ann'))
      .map((frame) => frame.raw)
    t.same((await ann.take(4)).map((frame) => frame.raw), framesFor('ann'), 'ann: her orders and the notice, byte for byte')
    t.same((await bob.take(3)).map((frame) => frame.raw), framesFor('bob'), 'bob: his and the notice')
    t.equal(app.sse.stats().sentEvents, 6 + 6 + 4 + 3, 'only what was selected counts as sent')

    // Replayed after a Last-Event-ID: the same selection.
    const resumed = await FrameReader.fetch(url + '/orders/bob', { 'last-event-id': published[0].id })
    t.same((await resumed.take(3)).map((frame) => frame.id), published.filter((p) => p.user !== 'ann').map((p) => p.id))
    // An iterator, narrowed twice, replayed then live.
    const bobsOrders = orders.where((message) => message.event === 'order').where((message) => message.event === 'order' && message.data.userId === 'bob')
    t.equal(bobsOrders.name, orders.name)
    const iterator = bobsOrders.subscribe({ lastEventId: published[0].id })
    await iterator.ready
    const last = await orders.publish({ event: 'order', data: { userId: 'bob', n: 7 } })
    await orders.publish({ event: 'order', data: { userId: 'ann', n: 8 } })
    t.same((await take(iterator, 3)).map((message) => [message.id, message.data]), [
      [published[1].id, { userId: 'bob', n: 2 }],
      [published[4].id, { userId: 'bob', n: 5 }],
      [last, { userId: 'bob', n: 7 }]
    ])
    t.same((await resumed.take(1)).map((frame) => frame.id), [last], 'then live')
    t.throws(() => orders.where('bob' as never), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
    for (const stream of [all, ann, bob, resumed]) await stream.abort()
    await iterator.return()
    await warm.return()
  })

  t.test('where(): a predicate that throws ends that subscriber only, with a logged error; the others and the publisher go on', async (t) => {
    const bus = kit.create()
    const logs = new LogCapture()
    let channel!: Channel
    const { url } = await startApp(t, { bus }, (app) => {
      channel = app.sse.channel(uniqueName('throws'))
      app.get<{ Querystring: { at?: string } }>('/picky', (request, reply) => reply.sse(channel.where((message) => {
        if (message.data === Number(request.query.at)) throw new Error('predicate bug')
        return true
      })))
    }, { logger: logs.logger })
    const warm = channel.subscribe()
    await warm.ready
    const ids = [await channel.publish({ data: 1 })]
    const live = await FrameReader.fetch(url + '/picky?at=3')
    const healthy = await FrameReader.fetch(url + '/picky')
    const iterator = channel.where((message) => {
      if (message.data === 3) throw new Error('predicate bug')
      return true
    }).subscribe()
    await iterator.ready
    ids.push(await channel.publish({ data: 2 }))
    t.same(dataOf(await live.take(1)), [2])
    t.same((await take(iterator, 1)).map((message) => message.data), [2])
    // Batched together: the throw comes in the middle of a batch, none of which that subscriber gets.
    ids.push(...await Promise.all([channel.publish({ data: 3 }), channel.publish({ data: 4 })]))
    t.same(dataOf(await live.take(2)), [], 'the stream ended')
    t.same(dataOf(await healthy.take(3)), [2, 3, 4], 'another subscriber of the same route got everything')
    await t.rejects(iterator.next(), { message: 'predicate bug' }, 'an iterator gets the error')
    // On replay too.
    const replayed = await FrameReader.fetch(url + '/picky?at=2', { 'last-event-id': ids[0] })
    t.same(await replayed.take(1), [], 'ended at the replayed event that threw')
    ids.push(await channel.publish({ data: 5 }))
    t.same(dataOf(await healthy.take(1)), [5])
    t.same((await take(warm, 5)).map((message) => message.data), [1, 2, 3, 4, 5])
    const line = await logs.waitFor('predicate threw', 3)
    t.equal((line.err as { message: string }).message, 'predicate bug')
    // A stream's line is its request's (the request id says which client); the iterator's is the app's.
    const threw = logs.lines.filter((logged) => String(logged.msg).includes('predicate threw'))
    t.same(threw.map((logged) => typeof logged.reqId).sort(), ['string', 'string', 'undefined'], "the streams' lines carry their request id")
    await healthy.abort()
    await warm.return()
  })

  t.test('reply.sse(channel.subscribe(options)) streams as reply.sse(channel) does, from the subscription\'s lastEventId, what it had queued first', async (t) => {
    const bus = kit.create()
    let channel!: Channel
    const handing: { subscription?: ReturnType<Channel['subscribe']> } = {}
    const { app, url } = await startApp(t, { bus }, (app) => {
      channel = app.sse.channel(uniqueName('handed'))
      app.get<{ Querystring: { from?: string } }>('/subscribe', (request, reply) => reply.sse(channel.subscribe({ lastEventId: request.query.from })))
      app.get('/direct', (request, reply) => reply.sse(channel))
      app.get('/handed', (request, reply) => reply.sse(handing.subscription as ReturnType<Channel['subscribe']>))
    })
    const warm = channel.subscribe()
    await warm.ready
    const ids = [await channel.publish({ data: 'one' }), await channel.publish({ event: 'two', data: { n: 2 } })]
    const viaSubscribe = await FrameReader.fetch(url + '/subscribe?from=' + ids[0])
    const direct = await FrameReader.fetch(url + '/direct', { 'last-event-id': ids[0] })
    ids.push(await channel.publish({ data: 3 }))
    const frames = await viaSubscribe.take(2)
    t.same(frames, await direct.take(2), 'the same frames')
    t.same(frames.map((frame) => frame.id), ids.slice(1))

    // A subscription used as an iterator first: what it queued and nobody pulled goes out first.
    const handed = handing.subscription = channel.subscribe()
    await handed.ready
    ids.push(await channel.publish({ data: 4 }), await channel.publish({ data: 5 }))
    await take(warm, 5)
    t.same((await take(handed, 1)).map((message) => message.data), [4])
    const stream = await FrameReader.fetch(url + '/handed')
    ids.push(await channel.publish({ data: 6 }))
    t.same((await stream.take(2)).map((frame) => frame.id), ids.slice(4), 'the one queued, then live')
    t.same(await handed.next(), { done: true, value: undefined }, 'the iterator is done: the stream has it')
    t.equal(app.sse.stats().openStreams, 3)
    await stream.abort()
    // An ended subscription ends the stream at once.
    const ended = await FrameReader.fetch(url + '/handed')
    await ended.ended()
    t.same(ended.frames, [])
    await viaSubscribe.abort()
    await direct.abort()
    await warm.return()
  })

  t.test('replay is paged and paced: resuming streams that read slowly hold about a page each, not the history', async (t) => {
    const bus = kit.create()
    const clients = 5
    const events = 1000
    const payload = 'r'.repeat(16 * 1024)
    let channel!: Channel
    const { app, port } = await startApp(t, { bus }, (app) => {
      channel = app.sse.channel(uniqueName('long'), { history: events })
      app.get('/long', (request, reply) => reply.sse(channel))
    })
    const ids: string[] = []
    for (let n = 0; n < events; n += 50) {
      ids.push(...await Promise.all(Array.from({ length: 50 }, () => channel.publish({ data: payload }))))
    }
    const subscribers: RawSubscriber[] = []
    t.teardown(() => { for (const subscriber of subscribers) subscriber.close() })
    for (let i = 0; i < clients; i++) subscribers.push(new RawSubscriber(port, '/long', { 'last-event-id': ids[0] }))
    await Promise.all(subscribers.map(async (subscriber) => {
      await subscriber.head
      subscriber.socket.pause()
    }))
    // Each stream's own buffer is 64 KiB; one 32 KiB batch and one event may come on top.
    const perStream = 64 * 1024 + 32 * 1024 + payload.length + 1024
    let most = 0
    t.ok(await eventually(() => {
      most = Math.max(most, app.sse.stats().queuedBytes)
      return app.sse.stats().queuedBytes >= clients * 64 * 1024
    }, 30_000), 'every stream backed up')
    t.ok(most <= clients * perStream, `the server holds about a page per stream (most ${most} bytes), not ${clients} histories of ${events * payload.length}`)
    t.ok(app.sse.stats().sentEvents < clients * (events - 1), 'the replay waits for the readers')
    for (const subscriber of subscribers) subscriber.socket.resume()
    const received = await Promise.all(subscribers.map((subscriber) => subscriber.reader.waitFor(events - 1)))
    t.equal(received.filter((frames) => frames.map((frame) => frame.id).join() === ids.slice(1).join()).length, clients, 'each got the whole replay, in order')
    const next = await channel.publish({ data: 'live' })
    const after = await Promise.all(subscribers.map((subscriber) => subscriber.reader.waitFor(events)))
    t.same(after.map((frames) => frames[events - 1].id), Array(clients).fill(next), 'then live')
  })

  t.test('stats().queuedBytes counts a broadcast Buffer once, however many streams hold it', async (t) => {
    const bus = kit.create()
    const clients = 10
    const payload = 'q'.repeat(64 * 1024)
    let channel!: Channel
    const { app, port } = await startApp(t, { bus, maxBufferedBytes: 1 << 30 }, (app) => {
      channel = app.sse.channel(uniqueName('held'))
      app.get('/held', (request, reply) => reply.sse(channel))
    })
    const warm = channel.subscribe()
    await warm.ready
    const subscribers: RawSubscriber[] = []
    t.teardown(() => { for (const subscriber of subscribers) subscriber.close() })
    for (let i = 0; i < clients; i++) subscribers.push(new RawSubscriber(port, '/held'))
    await Promise.all(subscribers.map((subscriber) => subscriber.head))
    for (const subscriber of subscribers) subscriber.socket.pause()
    await eventually(() => app.sse.stats().openStreams === clients, 10_000)
    // Past what the sockets take (the kernel's buffers), every stream queues every batch.
    let published = 0
    const publish = async (): Promise<string> => {
      const id = await channel.publish({ data: payload })
      await take(warm, 1) // the batch went out
      published += Buffer.byteLength(`id: ${id}\ndata: ${payload}\n\n`)
      return id
    }
    for (let n = 0; n < 160; n++) await publish()
    const before = app.sse.stats().queuedBytes
    t.ok(before > 0 && before <= published, `what is held is at most what was published once (${before} of ${published})`)
    const id = await publish()
    t.equal(app.sse.stats().queuedBytes - before, Buffer.byteLength(`id: ${id}\ndata: ${payload}\n\n`), 'one more batch: its bytes once')
    for (const subscriber of subscribers) subscriber.close()
    await warm.return()
  })

  t.test('lastEventIdQuery: an EventSource opened with the stored cursor in the URL resumes the channel after it', async (t) => {
    const bus = kit.create()
    let channel!: Channel
    const { url } = await startApp(t, { bus, lastEventIdQuery: 'lastEventId' }, (app) => {
      channel = app.sse.channel(uniqueName('reload'))
      app.get('/reload', (request, reply) => reply.sse(channel))
    })
    const ids = [await channel.publish({ data: 'one' }), await channel.publish({ data: 'two' }), await channel.publish({ data: 'three' })]
    // After a page reload: the application stored the last id it saw, and passes it on.
    const source = new EventSource(url + '/reload?lastEventId=' + encodeURIComponent(ids[0]))
    t.teardown(() => source.close())
    const received = collect(source, 3)
    await once(source, 'open')
    await channel.publish({ data: 'four' })
    t.same(await received, ['two', 'three', 'four'])
    t.equal(source.readyState, source.OPEN)
    source.close()
  })
}
