import t from 'tap'
import { memoryBus } from '../../lib/index.js'
import type { Bus } from '../../lib/index.js'
import { BusError } from '../../lib/errors.js'
import { startApp } from '../support/index.js'
import { ManualBus } from './manual-bus.js'

// A subscriber that left before its join settled: the join's failure still rejects `ready`,
// and the iteration, already over, stays over (no error surfaces from next()). Shutdown used
// to reach this by chance (the bus closing under a join); now that the close waits for the bus,
// it is tested on purpose.
t.test('a join that fails after the subscriber left: ready rejects, the iteration stays done', async (t) => {
  const bus = new ManualBus()
  bus.failListen = new BusError('redis is down')
  const { app } = await startApp(t, { bus })
  const subscription = app.sse.channel('room').subscribe()
  await subscription.return()
  await t.rejects(subscription.ready, { code: 'FST_ERR_CONDUIT_BUS' })
  t.same(await subscription.next(), { done: true, value: undefined })
})

// A bus that lost live entries calls onGap (redisBus does; see test/redis/failures.test.ts):
// the channel's live subscribers end. Here without Redis, so that runs without it cover it too.
t.test('a gap signalled by the bus ends the live subscribers', async (t) => {
  const inner = memoryBus()
  let gap: (() => void) | undefined
  const bus: Bus = {
    history: inner.history,
    ready: (log) => inner.ready(log),
    publish: (...args) => inner.publish(...args),
    listen: (channel, listener, onGap) => {
      gap = onGap
      return inner.listen(channel, listener)
    },
    replay: (...args) => inner.replay(...args),
    compare: (a, b) => inner.compare(a, b),
    close: () => inner.close()
  }
  const { app } = await startApp(t, { bus })
  const subscription = app.sse.channel('room').subscribe()
  await subscription.ready
  gap?.()
  t.same(await subscription.next(), { done: true, value: undefined })
})
