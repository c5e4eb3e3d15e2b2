import t from 'tap'
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
