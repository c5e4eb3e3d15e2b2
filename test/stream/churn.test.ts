import t from 'tap'
import { random } from '../wire/property.js'
import { proofScale, recordProof } from '../support/proof.js'
import { eventually } from '../support/index.js'
import { allEnded, churn, collector, noMoreThan, resources, settledHeap, startChurnServer } from './churn.js'

// Clients vanishing at random points (mid-request, before the head, mid-event, right after a
// heartbeat, mid-replay, live on a channel), destroyed, reset or half-closed: afterwards every
// stream has ended, the channel has no subscriber left, nothing is left running (handles,
// timers, sockets, listeners) and the heap is back within 5 MB. `npm run soak` runs 10,000.

t.test('connect/disconnect cycles leave nothing behind', async (t) => {
  const gc = collector()
  const server = await startChurnServer(t)
  const { app, channel } = server
  const next = random(Number(process.env.CONDUIT_CHURN_SEED ?? 15))
  // A first round warms up what lives as long as the process (compiled code, pools).
  await churn(server, 120, 20, next)
  t.ok(await allEnded(app, 10_000), 'the warm-up streams ended')
  const baseline = resources()
  const listeners = app.server.listenerCount('connection') + app.server.listenerCount('request')
  const heapBefore = await settledHeap(gc)

  const cycles = proofScale(900, 10_000)
  const started = Date.now()
  const counts = await churn(server, cycles, proofScale(40, 100), next)
  t.ok(await allEnded(app, 10_000), `every stream ended (${app.sse.stats().openStreams} open)`)
  t.equal(app.sse.stats().totalStreams >= cycles * 0.6, true, `the streams opened (${app.sse.stats().totalStreams})`)

  // Nobody is subscribed: a publish is sent to no one.
  const sentBefore = app.sse.stats().sentEvents
  await channel.publish({ data: 'after' })
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(app.sse.stats().sentEvents, sentBefore, 'the channel has no subscriber left')
  t.equal(app.server.listenerCount('connection') + app.server.listenerCount('request'), listeners, 'no listener left on the server')
  t.ok(await eventually(() => noMoreThan(baseline), 5000),
    `nothing left running: ${JSON.stringify(resources())} (before: ${JSON.stringify(baseline)})`)
  const heapAfter = await settledHeap(gc)
  const growth = heapAfter - heapBefore
  t.ok(growth < 5 * 1024 * 1024, `heap back within 5 MB after GC (grew ${(growth / 1024 / 1024).toFixed(2)} MB)`)
  recordProof('churn', { cycles, counts, heapGrowthBytes: growth, resources: resources(), ms: Date.now() - started })
})
