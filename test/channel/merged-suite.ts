import { Type } from '@sinclair/typebox'
import { EventSource } from 'eventsource'
import type { FastifyInstance } from 'fastify'
import type { Bus, Channel } from '../../lib/index.js'
import { START } from '../../lib/channel/bus.js'
import { GAP_FRAME } from '../../lib/channel/channel.js'
import { connect } from '../../lib/client/index.js'
import { FrameReader, RawSubscriber, startApp, uniqueName } from '../support/index.js'
import type { Frame } from '../support/index.js'
import type { BusKit, Test } from './suite.js'

/** The merged suite's kit: a bus, and on Redis one whose whole dataset the test can lose. */
export interface MergedKit extends BusKit {
  /**
   * A bus on a Redis of the test's own, and `lose()`, which restarts that Redis without
   * persistence (its whole dataset gone). Absent on memoryBus, whose process restart is a new
   * bus (another epoch in every id).
   */
  losable?: (t: Test) => Promise<{ bus: Bus, lose: () => Promise<void> }>
}

/** Resolves after `ms` (pacing a loop that waits for the bus, never an assertion). */
function pause (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

const Headline = Type.Object({ title: Type.String() })
const Alert = Type.Object({ team: Type.String(), level: Type.Integer() })

interface Dashboard {
  app: FastifyInstance
  url: string
  news: Channel<{ headline: typeof Headline }>
  alerts: Channel<{ alert: typeof Alert }>
  room: Channel
}

/** `count` instances sharing a bus (and so the channels), each a {@link startDashboard}. */
async function startDashboards (t: Test, kit: BusKit, count: number): Promise<Dashboard[]> {
  const names = [uniqueName('news'), uniqueName('alerts'), uniqueName('room')]
  const bus = kit.create()
  const dashboards: Dashboard[] = []
  for (let i = 0; i < count; i++) dashboards.push(await startDashboard(t, i === 0 ? bus : kit.peer(bus), names))
  return dashboards
}

/** An app streaming news, red's alerts and a room on one connection, at `GET /dash`. */
async function startDashboard (t: Test, bus: ReturnType<BusKit['create']>, names: string[]): Promise<Dashboard> {
  let news!: Dashboard['news']
  let alerts!: Dashboard['alerts']
  let room!: Channel
  const { app, url } = await startApp(t, { bus, lastEventIdQuery: 'lastEventId' }, (app) => {
    news = app.sse.channel(names[0], { schema: { headline: Headline } })
    alerts = app.sse.channel(names[1], { schema: { alert: Alert } })
    room = app.sse.channel(names[2])
    app.get('/dash', (request, reply) =>
      reply.sse(app.sse.merge([news, alerts.where((message) => message.data.team === 'red'), room])))
  })
  return { app, url, news, alerts, room }
}

/** What frames say: each one's event and data. */
function contentOf (frames: Frame[]): string[] {
  return frames.map((frame) => `${frame.event ?? 'message'} ${frame.data ?? ''}`)
}

/**
 * The same, channel by channel (each channel's events have their own names here): the order
 * within a channel is kept; across channels, events come as each channel's batches do.
 */
function byChannel (contents: string[]): Record<string, string[]> {
  const channels: Record<string, string[]> = {}
  for (const content of contents) (channels[content.slice(0, content.indexOf(' '))] ??= []).push(content)
  return channels
}

/**
 * Several channels on one stream (`app.sse.merge()`), run by test/channel/merged.test.ts on
 * memoryBus() and by test/redis/merged.test.ts on redisBus(), with real clients.
 */
export function mergedSuite (t: Test, kit: MergedKit): void {
  t.test('three channels interleaved on one stream; the one id resumes each channel exactly, on this instance and on another', async (t) => {
    const [a, b] = await startDashboards(t, kit, 2)
    // Everything that is published, and what a red subscriber should see of it, in order.
    const expected: string[] = []
    const publish = {
      news: async (on: Dashboard, title: string) => {
        await on.news.publish({ event: 'headline', data: { title } })
        expected.push(`headline {"title":"${title}"}`)
      },
      alert: async (on: Dashboard, team: string, level: number) => {
        await on.alerts.publish({ event: 'alert', data: { team, level } })
        if (team === 'red') expected.push(`alert {"team":"${team}","level":${level}}`)
      },
      room: async (on: Dashboard, text: string) => {
        await on.room.publish({ event: 'say', data: text })
        expected.push(`say ${text}`)
      }
    }

    const first = await FrameReader.fetch(a.url + '/dash')
    t.equal(first.status, 200)
    // The stream is joined once a first event reaches it.
    await publish.room(a, 'hello')
    t.same(contentOf(await first.take(1)), expected.slice(0, 1))
    await publish.news(a, 'one')
    await publish.alert(a, 'blue', 1)
    await publish.alert(b, 'red', 2)
    await publish.room(b, 'two')
    await publish.news(b, 'three')
    const live = await first.take(4)
    t.same(byChannel(contentOf(live)), byChannel(expected.slice(1, 5)), 'interleaved, each with its own event name; blue alerts not selected')
    const ids = live.map((frame) => frame.id as string)
    t.equal(new Set(ids).size, 4, 'every event has an id of its own')
    t.ok(ids.every((id) => id.length <= 1024), 'ids stay within what a server reads')
    await first.abort()

    // Away: more on every channel, more than a replay page on one.
    for (let n = 0; n < 120; n++) await publish.news(b, `n${n}`)
    await publish.alert(a, 'red', 3)
    await publish.alert(a, 'blue', 4)
    await publish.room(a, 'three')

    // Back on the other instance with the id of the last event it got.
    const back = await FrameReader.fetch(b.url + '/dash', { 'last-event-id': ids[3] })
    const missed = expected.length - 5
    const resumed = await back.take(missed)
    t.same(byChannel(contentOf(resumed)), byChannel(expected.slice(5)), 'each channel from where it stopped, each event once')
    t.notOk(resumed.some((frame) => frame.comment !== undefined), 'no gap')
    await publish.room(a, 'live')
    t.same(contentOf(await back.take(1)), [expected.at(-1)], 'then live')
    await back.abort()

    // Resuming in the middle of that replay, from the first instance: the rest, once.
    const middle = resumed[60].id as string
    const again = await FrameReader.fetch(a.url + '/dash', { 'last-event-id': middle })
    const rest = contentOf(await again.take(missed + 1 - 61))
    t.same(byChannel(rest), byChannel(contentOf(resumed.slice(61)).concat(expected.at(-1) as string)))
    await again.abort()
  })

  t.test('real clients: EventSource resumes from the URL on another instance; connect() with its lastEventId', async (t) => {
    const [a, b] = await startDashboards(t, kit, 2)

    const source = new EventSource(a.url + '/dash')
    t.teardown(() => source.close())
    const seen: Array<{ type: string, data: string, id: string }> = []
    let wake: (() => void) | undefined
    for (const type of ['headline', 'alert', 'say']) {
      source.addEventListener(type, (event) => {
        seen.push({ type, data: event.data, id: event.lastEventId })
        wake?.()
      })
    }
    const until = (count: number): Promise<void> => new Promise((resolve) => {
      const check = (): void => { if (seen.length >= count) resolve() }
      wake = check
      check()
    })
    await new Promise((resolve) => { source.onopen = resolve })
    await a.room.publish({ event: 'say', data: { text: 'one' } })
    await until(1)
    await b.news.publish({ event: 'headline', data: { title: 'two' } })
    await b.alerts.publish({ event: 'alert', data: { team: 'red', level: 3 } })
    await until(3)
    source.close()
    const stored = seen[2].id

    // Away; then a page reload on the other instance: the stored id goes in the URL.
    await a.news.publish({ event: 'headline', data: { title: 'four' } })
    await a.room.publish({ event: 'say', data: { text: 'five' } })
    const reloaded = new EventSource(`${b.url}/dash?lastEventId=${encodeURIComponent(stored)}`)
    t.teardown(() => reloaded.close())
    const after: string[] = []
    const three = new Promise<void>((resolve) => {
      for (const type of ['headline', 'alert', 'say']) {
        reloaded.addEventListener(type, (event) => {
          after.push(`${type} ${event.data}`)
          if (after.length === 3) resolve()
        })
      }
    })
    await new Promise((resolve) => { reloaded.onopen = resolve })
    await b.alerts.publish({ event: 'alert', data: { team: 'red', level: 6 } })
    await three
    reloaded.close()
    t.same(after.sort(), ['alert {"team":"red","level":6}', 'headline {"title":"four"}', 'say {"text":"five"}'])

    // fastify-conduit's client, typed from the channels' events, from the same stored id.
    const controller = new AbortController()
    const stream = connect(`${a.url}/dash`, {
      events: { headline: Headline, alert: Alert, say: Type.Object({ text: Type.String() }) },
      lastEventId: stored,
      signal: controller.signal
    })
    const got: string[] = []
    for await (const ev of stream) {
      if (ev.event === 'headline') got.push(ev.data.title)
      else if (ev.event === 'alert') got.push(`${ev.data.team}${ev.data.level}`)
      else got.push(ev.data.text)
      if (got.length === 3) break
    }
    controller.abort()
    t.same(got.sort(), ['five', 'four', 'red6'])
  })

  t.test('a drop before a channel\'s first event still resumes that channel, empty channels included', async (t) => {
    const [a] = await startDashboards(t, kit, 1)
    // news has a history from before the client came; alerts and room have none at all.
    await a.news.publish({ event: 'headline', data: { title: 'old' } })
    const first = await FrameReader.fetch(a.url + '/dash')
    await a.news.publish({ event: 'headline', data: { title: 'seen' } })
    const [seen] = await first.take(1)
    t.same(contentOf([seen]), ['headline {"title":"seen"}'], 'nothing from before it came')
    await first.abort()
    await a.room.publish({ event: 'say', data: 'while away' })
    await a.alerts.publish({ event: 'alert', data: { team: 'red', level: 1 } })
    const back = await FrameReader.fetch(a.url + '/dash', { 'last-event-id': seen.id as string })
    t.same(contentOf(await back.take(2)).sort(), ['alert {"team":"red","level":1}', 'say while away'])
    await back.abort()
  })

  t.test('a channel empty when the stream began, then trimmed past its history while away: one gap frame, then what it retains', async (t) => {
    const bus = kit.create()
    const names = [uniqueName('full'), uniqueName('empty'), uniqueName('quiet')]
    let full!: Channel
    let empty!: Channel
    const { url } = await startApp(t, { bus }, (app) => {
      full = app.sse.channel(names[0])
      empty = app.sse.channel(names[1], { history: 3 })
      const quiet = app.sse.channel(names[2])
      app.get('/m', (request, reply) => reply.sse(app.sse.merge([full, empty, quiet])))
    })
    // `empty` and `quiet` have no event at all when the stream begins (on Redis: no key).
    const first = await FrameReader.fetch(url + '/m')
    await full.publish({ data: 'seen' })
    const [seen] = await first.take(1)
    await first.abort()
    // Away: far more than its history on `empty` (enough for Redis's MAXLEN ~ to trim whole
    // nodes); `quiet` stays empty.
    const published: string[] = []
    for (let n = 0; n < 250; n++) published.push(await empty.publish({ data: String(n) }))
    const retained = (await bus.replay(names[1], START)).entries.map((entry) => entry.id)
    t.ok(retained.length >= 3 && retained.length < published.length, 'the bus dropped the oldest')
    t.same(retained, published.slice(-retained.length), 'and kept the newest')

    const back = await FrameReader.fetch(url + '/m', { 'last-event-id': seen.id as string })
    const frames = await back.take(1 + retained.length)
    t.equal(frames[0].raw + '\n', GAP_FRAME, 'the gap first')
    const expected = Array.from(retained, (_, i) => String(published.length - retained.length + i))
    t.same(frames.slice(1).map((frame) => frame.data), expected, 'then every retained event, in order')
    await back.abort()

    // From the last of those: exact, no gap (the channel still empty is no gap either).
    const again = await FrameReader.fetch(url + '/m', { 'last-event-id': frames.at(-1)?.id as string })
    await empty.publish({ data: 'next' })
    t.same((await again.take(1)).map((frame) => [frame.comment, frame.data]), [[undefined, 'next']])
    await again.abort()
  })

  /**
   * `kept` and `anew` on one stream, at `GET /m`; the client's id is that of `kept`'s first
   * event, taken while `anew` had none (on Redis: no key).
   */
  async function leaveBeforeFirst (t: Test, bus: Bus): Promise<{ url: string, kept: Channel, anew: Channel, names: string[], id: string }> {
    const names = [uniqueName('kept'), uniqueName('anew')]
    let kept!: Channel
    let anew!: Channel
    const { url } = await startApp(t, { bus }, (app) => {
      kept = app.sse.channel(names[0])
      anew = app.sse.channel(names[1])
      app.get('/m', (request, reply) => reply.sse(app.sse.merge([kept, anew])))
    })
    const first = await FrameReader.fetch(url + '/m')
    await kept.publish({ data: 'seen' })
    const [seen] = await first.take(1)
    await first.abort()
    return { url, kept, anew, names, id: seen.id as string }
  }

  /** Resumes `/m` from `id`; `count` frames, then `live` published on `anew` (there if a frame is missing). */
  async function resume (url: string, id: string, count: number, anew: Channel): Promise<Frame[]> {
    const back = await FrameReader.fetch(url + '/m', { 'last-event-id': id })
    await anew.publish({ data: 'live' })
    const frames = await back.take(count)
    await back.abort()
    return frames
  }

  t.test('a channel empty when the stream began, its whole history dropped (ttl) and begun anew while away: one gap frame, then the new events', async (t) => {
    const ttl = 1000
    const bus = kit.create({ ttl })
    const { url, kept, anew, names, id } = await leaveBeforeFirst(t, bus)
    // Away: E1..E3 on `anew`, then quiet for ttl, which drops its whole history (Redis: the
    // key expires; memoryBus: its sweep forgets it). `kept` stays busy meanwhile, so the
    // client's position on it is kept: only `anew` can tell the loss.
    for (const data of ['E1', 'E2', 'E3']) await anew.publish({ data })
    const keptAlive: string[] = []
    while ((await bus.replay(names[1], START)).entries.length > 0) {
      keptAlive.push(`k${keptAlive.length}`)
      await kept.publish({ data: keptAlive.at(-1) })
      await pause(ttl / 10)
    }
    // Then a new history: F1, F2.
    await anew.publish({ data: 'F1' })
    await anew.publish({ data: 'F2' })

    // The gap, `kept`'s events and F1, F2 (without the gap: `live` in its place).
    const frames = await resume(url, id, 1 + keptAlive.length + 2, anew)
    const data = frames.map((frame) => frame.raw + '\n' === GAP_FRAME ? 'gap' : frame.data)
    t.same(data.filter((text) => text?.startsWith('k')), keptAlive, 'kept: every event, in order')
    t.same(data.filter((text) => text?.startsWith('k') === false && text !== 'gap'), ['F1', 'F2'], 'anew: the new history')
    t.equal(data.filter((text) => text === 'gap').length, 1, 'one gap frame')
    t.ok(data.indexOf('gap') < data.indexOf('F1'), 'before F1')
  })

  t.test('a channel empty when the stream began, first published after the client left (away shorter than ttl): no gap', async (t) => {
    const bus = kit.create({ ttl: 60_000 })
    const { url, kept, anew, id } = await leaveBeforeFirst(t, bus)
    await kept.publish({ data: 'k' })
    await anew.publish({ data: 'F1' })
    await anew.publish({ data: 'F2' })
    const frames = await resume(url, id, 4, anew)
    t.same(frames.map((frame) => frame.data ?? frame.raw).sort(), ['F1', 'F2', 'k', 'live'], 'everything, and no gap')
  })

  t.test('a channel still empty when the client resumes ttl or more after the stream began: at most one gap frame, then none at the next resume', async (t) => {
    const ttl = 500
    const bus = kit.create({ ttl })
    const { url, kept, anew, names, id } = await leaveBeforeFirst(t, bus)
    const began = Date.now()
    // Away for two ttls and more (memoryBus forgets `anew` at a sweep after ttl, which runs
    // every ttl); `kept` stays busy meanwhile, so the client's position on it is kept.
    const keptAlive: string[] = []
    while (Date.now() - began < 2 * ttl + 100) {
      keptAlive.push(`k${keptAlive.length}`)
      await kept.publish({ data: keptAlive.at(-1) })
      await pause(ttl / 10)
    }
    t.same(await bus.replay(names[1], START), { entries: [], complete: true }, 'anew: still no event')
    const back = await FrameReader.fetch(url + '/m', { 'last-event-id': id })
    let gaps = 0
    const data: string[] = []
    /** The next event frame (gap frames counted on the way). */
    const nextEvent = async (): Promise<Frame> => {
      for (;;) {
        const [frame] = await back.take(1)
        if (frame.raw + '\n' !== GAP_FRAME) {
          data.push(frame.data as string)
          return frame
        }
        gaps++
      }
    }
    let last!: Frame
    for (let n = 0; n < keptAlive.length; n++) last = await nextEvent()
    // After a false alarm, the next event of any channel carries anew's position as of this
    // connection (without one, the position it had was still good).
    const anewOf = (frameId: string): string => frameId.split('.')[2]
    for (let n = 0; n < 100 && anewOf(last.id as string) === anewOf(id); n++) {
      if (n > 0) await pause(10)
      await kept.publish({ data: `now${n}` })
      last = await nextEvent()
    }
    await back.abort()
    t.same(data.filter((text) => !text.startsWith('now')), keptAlive, 'kept: every event')
    t.ok(gaps <= 1, `at most one gap frame (a false alarm: ${gaps})`)
    if (gaps === 1) t.not(anewOf(last.id as string), anewOf(id), 'anew\'s position moved up')

    // Resumed from there: anew's first event, with no gap frame before it (a gap for anew
    // would come first).
    const again = await FrameReader.fetch(url + '/m', { 'last-event-id': last.id as string })
    await anew.publish({ data: 'first' })
    const frames: Frame[] = []
    while (frames.at(-1)?.data !== 'first') frames.push(...await again.take(1))
    t.same(frames.map((frame) => [frame.comment, frame.data]), [[undefined, 'first']], 'the next resume: no gap')
    await again.abort()
  })

  if (kit.losable !== undefined) {
    const losable = kit.losable
    t.test('a channel empty when the stream began, Redis restarted without persistence while away and the channel begun anew: one gap frame, then the new events', async (t) => {
      const { bus, lose } = await losable(t)
      const { url, kept, anew, id } = await leaveBeforeFirst(t, bus)
      for (const data of ['E1', 'E2', 'E3']) await anew.publish({ data })
      await lose()
      await kept.publish({ data: 'k' })
      await anew.publish({ data: 'F1' })
      await anew.publish({ data: 'F2' })
      const frames = await resume(url, id, 5, anew)
      t.equal(frames[0].raw + '\n', GAP_FRAME, 'the gap first, before anew\'s events as before kept\'s')
      t.same(frames.slice(1).map((frame) => frame.data).sort(), ['F1', 'F2', 'k', 'live'])
    })
  }

  t.test('an id these channels did not make: every channel replays what it retains, after one gap frame', async (t) => {
    const [a] = await startDashboards(t, kit, 1)
    const singleId = await a.news.publish({ event: 'headline', data: { title: 'a' } })
    await a.room.publish({ event: 'say', data: 'b' })
    const first = await FrameReader.fetch(a.url + '/dash')
    await a.room.publish({ event: 'say', data: 'c' })
    const [frame] = await first.take(1)
    await first.abort()
    const valid = frame.id as string
    const parts = valid.split('.')
    const foreign = [
      'garbage',
      singleId, // a single channel's id
      [parts[0], parts[1], parts[2]].join('.'), // too few positions
      ['zz', ...parts.slice(1)].join('.'), // another list of channels
      [parts[0], 'not!base36', ...parts.slice(2)].join('.'),
      [parts[0], '~', ...parts.slice(2)].join('.'),
      [parts[0], 'zzzzzzzzzzzzz', ...parts.slice(2)].join('.') // beyond 64 bits
    ]
    for (const id of foreign) {
      const stream = await FrameReader.fetch(a.url + '/dash', { 'last-event-id': id })
      const frames = await stream.take(4)
      t.equal(frames[0].raw + '\n', GAP_FRAME, `one gap frame for ${id}`)
      t.same(contentOf(frames.slice(1)).sort(), ['headline {"title":"a"}', 'say b', 'say c'].sort(), 'everything retained')
      await stream.abort()
    }
  })

  t.test('a channel that closes ends the stream; the client resumes every channel', async (t) => {
    const [a] = await startDashboards(t, kit, 1)
    const stream = await FrameReader.fetch(a.url + '/dash')
    await a.room.publish({ event: 'say', data: 'x' })
    await stream.take(1)
    a.room.close()
    await stream.ended()
    t.pass('the stream ended')
  })

  t.test('per-subscriber bounds: a long replay is paced by a client that stops reading; a live one that falls behind is dropped', async (t) => {
    const bus = kit.create()
    const maxBufferedBytes = 256 * 1024
    const names = [uniqueName('x'), uniqueName('y')]
    let x!: Channel
    let y!: Channel
    const { app, url, port } = await startApp(t, { bus, maxBufferedBytes }, (app) => {
      x = app.sse.channel(names[0])
      y = app.sse.channel(names[1])
      app.get('/xy', (request, reply) => reply.sse(app.sse.merge([x, y])))
    })
    const first = await FrameReader.fetch(url + '/xy')
    await y.publish({ data: 'start' })
    const [start] = await first.take(1)
    await first.abort()

    // More than socket buffers hold, read from the bus page by page as the client reads.
    const payload = 'x'.repeat(8 * 1024)
    for (let n = 0; n < 600; n++) await x.publish({ data: `${n} ${payload}` })
    const resuming = new RawSubscriber(port, '/xy', { 'last-event-id': start.id as string })
    t.teardown(() => resuming.close())
    await resuming.head
    resuming.socket.pause()
    await new Promise((resolve) => setTimeout(resolve, 50))
    resuming.socket.resume()
    const replayed = await resuming.reader.waitFor(600)
    t.same(replayed.map((frame) => Number(frame.data?.split(' ')[0])), Array.from({ length: 600 }, (_, n) => n), 'all of it, in order, once')
    resuming.close()

    const slow = new RawSubscriber(port, '/xy')
    const healthy = new RawSubscriber(port, '/xy')
    t.teardown(() => { slow.close(); healthy.close() })
    await Promise.all([slow.head, healthy.head])
    slow.socket.pause()
    const big = 'z'.repeat(32 * 1024)
    // A client that left earlier may already have been counted (written to before its close
    // was seen): only what this part adds is this part's.
    const before = app.sse.stats().slowDisconnects
    let published = 0
    while (app.sse.stats().slowDisconnects === before && published < 5000) {
      await x.publish({ data: big })
      published++
      await healthy.reader.waitFor(published)
    }
    t.equal(app.sse.stats().slowDisconnects, before + 1, 'the one that stopped reading was dropped')
    slow.socket.resume()
    await slow.reader.ended()
    await y.publish({ data: 'after' })
    t.equal((await healthy.reader.waitFor(published + 1)).at(-1)?.data, 'after', 'the other goes on')
  })

  t.test('merge() refuses what one stream cannot carry', async (t) => {
    const bus = kit.create()
    const { app } = await startApp(t, { bus })
    const news = app.sse.channel(uniqueName('news'))
    const code = { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' }
    t.throws(() => app.sse.merge([]), code)
    t.throws(() => app.sse.merge('news' as never), code)
    t.throws(() => app.sse.merge([news, news.where(() => true)]), code, 'a channel twice')
    t.throws(() => app.sse.merge([news.subscribe()] as never), code)
    t.throws(() => app.sse.merge(Array.from({ length: 33 }, (_, i) => app.sse.channel(uniqueName(`c${i}`)))), code)
    t.same(app.sse.merge([news]).names, [news.name])
    t.throws(() => app.sse.channel('@epoch'), code, 'the name a bus keeps its incarnation under')
  })
}
