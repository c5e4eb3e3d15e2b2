import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from '@sinclair/typebox'
import t, { type Test } from 'tap'
import { eventually, FrameReader, startApp, within } from '../support/index.js'

// No source, however it misbehaves, may starve the event loop: a stream pulls its source for
// at most a couple of milliseconds (or one full batch) before other streams, timers and
// sockets get a turn. The worst sources push nothing at all: every event is invalid and
// skipped (onInvalid: 'skip'), so backpressure never stops them. Before the fix, 1,000,000
// such events from an async generator held the event loop for ~6 s (200,000 here, for the
// suite's time: still seconds without the fix), and an endless one froze the server for good.

// What the tests assert is counted, not timed, so that a loaded machine (whose scheduler may
// stall the whole process for hundreds of ms) cannot fail them: the events a source is pulled
// for between two turns of the event loop, seen by a 1 ms timer. A turn allows 2 ms of pulling
// (~2,000 skipped events on a quiet machine); a starving source is pulled for all of them
// (200,000 here) or until its CAP. The wall-clock figures are reported, and bounded only
// loosely.
const MAX_PULLS_PER_TURN = 50_000
const MAX_DELAY_MS = 2_000
// An "endless" source stops by itself after this, so that a regression fails the test (the
// delay measured is then ~CAP) instead of hanging it.
const CAP_MS = 20_000
const TICK_MS = 10

const Tick = Type.Object({ n: Type.Number() })
const INVALID = { event: 'tick', data: { n: 'not a number' } }

type More = () => boolean
/** Every way a source can produce events without ever letting the event loop turn. */
// Invalid on purpose: the sources are passed `as never`, past the compile-time check.
const kinds: Record<string, (more: More) => unknown> = {
  'async generator': (more) => (async function * () { while (more()) yield INVALID })(),
  'sync generator': (more) => (function * () { while (more()) yield INVALID })(),
  'object-mode Readable': (more) => Readable.from((function * () { while (more()) yield INVALID })()),
  'async iterable resolving at once': (more) => ({
    [Symbol.asyncIterator]: () => ({
      next: () => Promise.resolve(more() ? { done: false, value: INVALID } : { done: true, value: undefined })
    })
  })
}

interface Measured {
  /** The most source pulls between two turns of the event loop (two runs of a 1 ms timer). */
  pullsPerTurn: number
  /** The longest event-loop delay, and the longest gap between two clock events, in ms. */
  loopDelay: number
  clockGap: number
}

interface Probe {
  /** What happens while `during` runs; `pulled` counts the source's pulls. */
  measure (pulled: () => number, during: () => Promise<void>): Promise<Measured>
}

/** A server with a clock stream (an event every TICK_MS), and a way to measure both delays. */
async function serverWithClock (t: Test, routes: Parameters<typeof startApp>[2]): Promise<Awaited<ReturnType<typeof startApp>> & Probe> {
  const started = await startApp(t, { onInvalid: 'skip' }, (app) => {
    routes?.(app)
    app.get('/clock', (request, reply) => reply.sse(async function * ({ signal }) {
      for (let n = 0; !signal.aborted; n++) {
        yield { data: n }
        await sleep(TICK_MS, undefined, { signal }).catch(() => {})
      }
    }))
  })
  const clock = await FrameReader.open(started.url + '/clock')
  const arrivals: number[] = []
  clock.response.on('data', () => arrivals.push(performance.now()))
  await clock.next()
  t.teardown(() => clock.close())
  return Object.assign(started, {
    async measure (pulled: () => number, during: () => Promise<void>): Promise<Measured> {
      const histogram = monitorEventLoopDelay({ resolution: 5 })
      const from = arrivals.length
      let pullsPerTurn = 0
      let last = pulled()
      const turns = setInterval(() => {
        pullsPerTurn = Math.max(pullsPerTurn, pulled() - last)
        last = pulled()
      }, 1)
      histogram.enable()
      await during()
      histogram.disable()
      clearInterval(turns)
      pullsPerTurn = Math.max(pullsPerTurn, pulled() - last)
      const seen = arrivals.slice(from)
      let clockGap = 0
      for (let i = 1; i < seen.length; i++) clockGap = Math.max(clockGap, seen[i] - seen[i - 1])
      t.ok(seen.length >= 3, `the clock stream kept ticking (${seen.length} events)`)
      t.ok(pullsPerTurn < MAX_PULLS_PER_TURN, `at most ${pullsPerTurn} pulls between two turns of the event loop`)
      const loopDelay = histogram.max / 1e6
      t.ok(loopDelay < MAX_DELAY_MS, `event-loop delay at most ${loopDelay.toFixed(1)} ms`)
      t.ok(clockGap < MAX_DELAY_MS, `the clock stream's longest gap: ${clockGap.toFixed(1)} ms`)
      return { pullsPerTurn, loopDelay, clockGap }
    }
  })
}

t.test('200,000 skipped invalid events delay neither a timer nor another stream', async (t) => {
  let pulled = 0
  const server = await serverWithClock(t, (app) => {
    app.get('/skipped', { schema: { sse: { tick: Tick } } }, (request, reply) =>
      reply.sse(kinds['async generator'](() => ++pulled <= 200_000) as never))
  })
  await server.measure(() => pulled, async () => {
    const skipped = await FrameReader.open(server.url + '/skipped')
    t.same(await skipped.all(), [], 'nothing was sent: every event was skipped')
  })
  t.equal(pulled, 200_001, 'the source ran to its end')
})

for (const [kind, make] of Object.entries(kinds)) {
  t.test(`an endless skipping source (${kind}) leaves the server responsive, and app.close() ends it`, async (t) => {
    let pulled = 0
    let settled: Promise<void> | undefined
    const deadline = Date.now() + CAP_MS
    const server = await serverWithClock(t, (app) => {
      app.get('/endless', { schema: { sse: { tick: Tick } } }, (request, reply) =>
        (settled = reply.sse(make(() => {
          pulled++
          return Date.now() < deadline
        }) as never)))
    })
    let endless!: FrameReader
    await server.measure(() => pulled, async () => {
      endless = await FrameReader.open(server.url + '/endless')
      // Long enough for many turns of both streams.
      t.ok(await eventually(() => pulled >= 10_000, CAP_MS), `the source is being pulled (${pulled} events)`)
      await sleep(10 * TICK_MS)
    })
    t.ok(Date.now() < deadline, 'the source was still going')
    t.ok(await within(server.app.close(), 5_000), 'app.close() finished')
    await endless.ended()
    t.ok(await within(settled as Promise<void>, 5_000), 'reply.sse settled')
    t.ok(Date.now() < deadline, 'the source was stopped by the close, not by its cap')
  })
}
