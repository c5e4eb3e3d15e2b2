import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { streamEvents } from 'fastify-conduit/testing'
import { Progress, progress } from '../../example/progress.ts'
import { startPackageApp } from '../support/index.js'

// Tested as a user tests their app: fastify-conduit/testing reads the route's events, typed
// and checked by the route's own schema.
async function start (t: Test): Promise<FastifyInstance> {
  return (await startPackageApp(t, {}, (app) => { app.register(progress, { interval: 1 }) })).app
}

const events = { progress: Progress }

t.test('progress goes from 0 to 100 in steps of 5, then ends', async (t) => {
  const stream = await streamEvents(await start(t), '/download', { events })
  const received = await stream.collect()
  t.equal(stream.ended, 'end')
  t.same(received.map((event) => event.data.progress), Array.from({ length: 21 }, (_, i) => i * 5))
  t.same(received.map((event) => event.id), received.map((event) => String(event.data.progress)))
  t.same(received.at(-1)?.data, { progress: 100, status: 'done', message: '5 files downloaded' })
  t.ok(received.slice(0, -1).every((event) => event.data.status === 'downloading'))
})

t.test('resumes after Last-Event-ID; after 100 it answers 204', async (t) => {
  const app = await start(t)
  const stream = await streamEvents(app, '/download', { events, lastEventId: '50' })
  t.same((await stream.collect()).map((event) => event.data.progress), [55, 60, 65, 70, 75, 80, 85, 90, 95, 100])
  t.equal(stream.lastEventId, '100')
  t.equal((await streamEvents(app, '/download', { lastEventId: stream.lastEventId })).statusCode, 204)
})

t.test('a client that leaves after 3 events, then comes back, misses nothing', async (t) => {
  const app = await start(t)
  const first = await streamEvents(app, '/download', { events, limit: 3 })
  t.same((await first.collect()).map((event) => event.data.progress), [0, 5, 10])
  const rest = await streamEvents(app, '/download', { events, lastEventId: first.lastEventId })
  t.same((await rest.collect()).map((event) => event.data.progress), Array.from({ length: 18 }, (_, i) => 15 + i * 5))
})
