import t from 'tap'
import type { Bus, BusEntry, BusListener, BusListening, BusReplay } from '../../lib/index.js'
import { START } from '../../lib/channel/bus.js'
import { FrameReader, startApp, take, uniqueName } from '../support/index.js'
import { countReaches } from './presence-suite.js'

/**
 * A bus of one's own, as the Bus interface allows: ids that are not stream ids, and neither
 * `last` nor presence. Publishing delivers at once, in this process.
 */
class PlainBus implements Bus {
  readonly history = 1000
  #seq = 0
  readonly #logs = new Map<string, BusEntry[]>()
  readonly #listeners = new Map<string, Set<BusListener>>()
  async ready (): Promise<void> {}
  async close (): Promise<void> {}
  async publish (channel: string, body: string, history: number, json?: string): Promise<string> {
    const id = `event/${++this.#seq}`
    this.#log(channel).push({ id, body, json })
    for (const listener of this.#listeners.get(channel) ?? []) listener(id, body, json)
    return id
  }

  listen (channel: string, listener: BusListener): BusListening {
    const listeners = this.#listeners.get(channel) ?? new Set()
    this.#listeners.set(channel, listeners)
    listeners.add(listener)
    return { ready: Promise.resolve(), stop: () => { listeners.delete(listener) } }
  }

  async replay (channel: string, afterId: string, limit = Infinity): Promise<BusReplay> {
    const log = this.#log(channel)
    // START: the whole log, which this bus never trims.
    if (afterId === START) return { entries: log.slice(0, limit), complete: true }
    const at = log.findIndex((entry) => entry.id === afterId)
    return at === -1 ? { entries: log.slice(0, limit), complete: false } : { entries: log.slice(at + 1, at + 1 + limit), complete: true }
  }

  compare (a: string, b: string): number {
    return Number(a.slice(6)) - Number(b.slice(6))
  }

  #log (channel: string): BusEntry[] {
    const log = this.#logs.get(channel) ?? []
    this.#logs.set(channel, log)
    return log
  }
}

t.test('a bus of its own, without last(): ids of any form go in the merged id; a channel not yet heard from resumes from its start', async (t) => {
  const bus = new PlainBus()
  const names = [uniqueName('one'), uniqueName('two')]
  const { app, url } = await startApp(t, { bus }, (app) => {
    app.get('/both', (request, reply) => reply.sse(app.sse.merge(names.map((name) => app.sse.channel(name)))))
  })
  const [one, two] = names.map((name) => app.sse.channel(name))
  const first = await FrameReader.fetch(url + '/both')
  await one.publish({ data: 'a' })
  const [frame] = await first.take(1)
  t.match(frame.id, /\.~[A-Za-z0-9_-]+\.$/, 'a position of another form, and none yet for the second channel')
  await first.abort()
  await one.publish({ data: 'b' })
  await two.publish({ data: 'c' })
  const back = await FrameReader.fetch(url + '/both', { 'last-event-id': frame.id as string })
  t.same((await back.take(2)).map((resumed) => resumed.data).sort(), ['b', 'c'])
  const [last] = await (async () => { await one.publish({ data: 'e' }); return await back.take(1) })()
  await back.abort()

  // A replay longer than the frames merged streams keep parsed: each frame once, in order.
  for (let n = 0; n < 1100; n++) await one.publish({ data: String(n) })
  const long = await FrameReader.fetch(url + '/both', { 'last-event-id': last.id as string })
  t.same((await long.take(1100)).map((frame) => frame.data), Array.from({ length: 1100 }, (_, n) => String(n)))
  await long.abort()

  // Presence without the bus's help: this instance's subscribers (once the streams left).
  t.equal(await countReaches(() => one.subscribers(), 0), 0)
  const subscription = one.subscribe()
  await subscription.ready
  t.equal(await one.subscribers(), 1)
  const id = await one.publish({ data: 'f' })
  t.same(await take(subscription, 1), [{ event: 'message', data: 'f', id }])
  await subscription.return()
  t.equal(await one.subscribers(), 0)
})
