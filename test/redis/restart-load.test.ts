import { Type } from '@sinclair/typebox'
import { EventSource } from 'eventsource'
import t from 'tap'
import type { Test } from 'tap'
import { connect } from '../../lib/client/index.ts'
import type { Channel } from '../../lib/index.js'
import { redisBus } from '../../lib/redis/index.js'
import { GAP_FRAME } from '../../lib/channel/channel.js'
import { eventually, FrameReader, freePort, startApp, uniqueName } from '../support/index.js'
import { killRedis, needRedisServer, redisDir, shutdownRedis, startRedis, testPrefix } from './helpers.js'

// Redis restarted under load: two Fastify instances on one Redis of this test's own, each
// publishing half of 500 events/s on one channel, read by our client and by the `eventsource`
// package on both instances. Redis is stopped (SHUTDOWN) and started again on the same
// directory in the middle of it. With AOF, the subscribers connected throughout get every
// acknowledged event once, in id order, and no publish hangs or is stored twice. Without
// persistence, what the README's "Guarantees" says is checked (and what was lost is printed).

const RATE = 500
const PUBLISH_TIMEOUT = 5000
const Tick = Type.Object({ n: Type.Integer() })

interface Run {
  /** Events whose publish() resolved, by n, with their id. */
  acknowledged: Map<number, string>
  /** Events whose publish() rejected, by n, with the error's code. */
  rejected: Map<number, string>
  /** Each subscriber's received [n, id], in order of arrival. */
  subscribers: Array<{ name: string, got: Array<[number, string]> }>
  /** Ns published once Redis was back (acknowledged after its restart was seen). */
  afterRestart: number[]
  /** The longest any publish() took, in ms. */
  longest: number
  /** The first n every subscriber was connected for. */
  first: number
  /** An instance's base URL, for a reader resuming after the load. */
  url: string
}

async function loadAcrossRestart (t: Test, aof: boolean): Promise<Run> {
  const port = await freePort()
  const dir = redisDir(t)
  const args = aof ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir] : ['--dir', dir]
  let redis = await startRedis(port, args)
  t.teardown(() => killRedis(redis))
  const url = `redis://127.0.0.1:${port}`
  const prefix = testPrefix()
  const name = uniqueName('load')
  const instances: Array<{ channel: Channel, url: string }> = []
  for (let i = 0; i < 2; i++) {
    let channel!: Channel
    const app = await startApp(t, { bus: redisBus({ url, prefix, publishTimeout: PUBLISH_TIMEOUT }) }, (app) => {
      channel = app.sse.channel(name, { schema: { tick: Tick }, history: 10_000 })
      app.get('/ticks', (request, reply) => reply.sse(channel))
    })
    instances.push({ channel, url: app.url })
  }

  const run: Run = { acknowledged: new Map(), rejected: new Map(), subscribers: [], afterRestart: [], longest: 0, first: 0, url: instances[1].url }
  const stop = new AbortController()
  t.teardown(() => stop.abort())
  for (const [i, instance] of instances.entries()) {
    // Our client: no heartbeat on these servers, so no idle timeout.
    const ours = { name: `connect() on instance ${i}`, got: [] as Array<[number, string]> }
    run.subscribers.push(ours)
    const stream = connect(instance.url + '/ticks', { events: { tick: Tick }, idleTimeout: false, signal: stop.signal })
    ;(async () => {
      for await (const ev of stream) ours.got.push([ev.data.n, ev.id])
    })().catch((err: unknown) => { if (!stop.signal.aborted) t.error(err) })
    const theirs = { name: `eventsource on instance ${i}`, got: [] as Array<[number, string]> }
    run.subscribers.push(theirs)
    const source = new EventSource(instance.url + '/ticks')
    source.addEventListener('tick', (ev) => theirs.got.push([JSON.parse(ev.data).n, ev.lastEventId]))
    stop.signal.addEventListener('abort', () => source.close())
  }
  let n = 0
  const publish = (): Promise<void> => {
    const mine = n++
    const started = Date.now()
    return instances[mine % 2].channel.publish({ event: 'tick', data: { n: mine } }).then(
      (id) => { run.acknowledged.set(mine, id) },
      (err: { code: string }) => { run.rejected.set(mine, err.code) }
    ).finally(() => { run.longest = Math.max(run.longest, Date.now() - started) })
  }
  // Every subscriber is connected once each has had an event: from then on, each is owed all.
  const publishes: Array<Promise<void>> = []
  while (!run.subscribers.every(({ got }) => got.length > 0)) {
    publishes.push(publish())
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  run.first = n

  // RATE events a second, as many each tick as are due (timers run late on a loaded machine).
  const started = Date.now()
  const base = n
  const ticker = setInterval(() => {
    const due = base + Math.floor((Date.now() - started) * RATE / 1000) - n
    for (let i = 0; i < due; i++) publishes.push(publish())
  }, 10)
  const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
  await wait(700)
  await shutdownRedis(redis, port)
  await wait(200)
  redis = await startRedis(port, args)
  const back = n
  await wait(700)
  clearInterval(ticker)
  await Promise.all(publishes)
  run.afterRestart = [...run.acknowledged.keys()].filter((k) => k >= back + RATE / 10)

  // Until every subscriber has what it is owed (at most 10 s).
  const owed = aof ? owedOf(run) : run.afterRestart
  await eventually(() => run.subscribers.every(({ got }) => {
    const seen = new Set(got.map(([k]) => k))
    return owed.every((k) => seen.has(k))
  }), 10_000)
  stop.abort()
  t.comment(`${n} published at ${RATE}/s across the restart, ${run.acknowledged.size} acknowledged, ${run.rejected.size} rejected; longest publish() ${run.longest} ms`)
  return run
}

/** The acknowledged events every subscriber is owed, in order. */
function owedOf (run: Run): number[] {
  return [...run.acknowledged.keys()].filter((k) => k >= run.first).sort((a, b) => a - b)
}

/** What a subscriber got of the events it is owed, sorted (duplicates kept). */
function receivedOf (run: Run, got: Array<[number, string]>): number[] {
  return got.map(([k]) => k).filter((k) => k >= run.first).sort((a, b) => a - b)
}

function inIdOrder (got: Array<[number, string]>): boolean {
  return got.every(([, id], i) => i === 0 || compareIds(got[i - 1][1], id) < 0)
}

function compareIds (a: string, b: string): number {
  const [ms1, seq1] = a.split('-').map(BigInt)
  const [ms2, seq2] = b.split('-').map(BigInt)
  return ms1 !== ms2 ? (ms1 < ms2 ? -1 : 1) : (seq1 < seq2 ? -1 : seq1 > seq2 ? 1 : 0)
}

if (needRedisServer(t, 'the Redis restart-under-load tests')) {
  t.test('with AOF (appendfsync always): connected subscribers lose nothing, see nothing twice; publish() neither hangs nor duplicates', async (t) => {
    const run = await loadAcrossRestart(t, true)
    t.equal(run.rejected.size, 0, 'every publish() resolved (the restart is shorter than publishTimeout)')
    t.ok(run.longest <= PUBLISH_TIMEOUT + 100, `no publish() took longer than its bound (${run.longest} ms)`)
    const distinct = new Set(run.acknowledged.values())
    t.equal(distinct.size, run.acknowledged.size, 'each event has its own id')
    const owed = owedOf(run)
    for (const { name, got } of run.subscribers) {
      t.same(receivedOf(run, got), owed, `${name}: every acknowledged event, once`)
      t.equal(new Set(got.map(([k]) => k)).size, got.length, `${name}: nothing twice`)
      t.ok(inIdOrder(got), `${name}: in id order`)
      t.ok(got.every(([k, id]) => run.acknowledged.get(k) === id), `${name}: under the id publish() resolved to`)
    }
    // The history survived: a reader resuming from the first event (before the restart) gets
    // exactly what followed it, with no gap.
    const ids = owed.map((k) => run.acknowledged.get(k) as string).sort(compareIds)
    const resumed = await FrameReader.fetch(run.url + '/ticks', { 'last-event-id': ids[0] })
    t.same((await resumed.take(ids.length - 1)).map((frame) => frame.id), ids.slice(1), 'a reader resuming from before the restart gets the rest, with no gap')
    await resumed.abort()
  })

  t.test('without persistence: what the README says holds (and what is lost, printed)', async (t) => {
    const run = await loadAcrossRestart(t, false)
    t.ok(run.longest <= PUBLISH_TIMEOUT + 100, `no publish() took longer than its bound (${run.longest} ms)`)
    for (const code of run.rejected.values()) t.equal(code, 'FST_ERR_CONDUIT_PUBLISH_TIMEOUT', 'a rejection is the coded timeout')
    for (const { name, got } of run.subscribers) {
      const seen = new Set(got.map(([k]) => k))
      t.ok(run.afterRestart.every((k) => seen.has(k)), `${name}: once Redis is back, live delivery goes on`)
      t.ok(inIdOrder(got), `${name}: ids still increase (a new Redis numbers from its clock)`)
      const lost = owedOf(run).filter((k) => !seen.has(k))
      const twice = got.length - seen.size
      t.comment(`${name}: ${lost.length} acknowledged events lost (${lost.join(', ') || 'none'}), ${twice} received twice`)
    }
    // The history did not survive: a reader resuming from before the restart is told.
    const first = run.acknowledged.get(run.first) as string
    const resumed = await FrameReader.fetch(run.url + '/ticks', { 'last-event-id': first })
    const [gap] = await resumed.take(1)
    t.equal(gap.raw + '\n', GAP_FRAME, 'a reader resuming from before the restart gets the gap comment first')
    await resumed.abort()
  })
}
