import t from 'tap'
import { redisBus } from '../../lib/redis/index.js'
import { countReaches, presenceSuite } from '../channel/presence-suite.js'
import { LogCapture, startApp, uniqueName } from '../support/index.js'
import { connectedClient, deleteKeys, needRedis, REDIS_URL, testClient, testPrefix } from './helpers.js'

// Presence on Redis: every instance publishes its counts every presenceInterval (here 100 ms);
// a count is valid 3 intervals.
const INTERVAL = 100

if (await needRedis(t)) {
  const prefix = testPrefix()
  t.teardown(() => deleteKeys(prefix))
  presenceSuite(t, {
    create: () => redisBus({ url: REDIS_URL, prefix, presenceInterval: INTERVAL }),
    peer: () => redisBus({ url: REDIS_URL, prefix, presenceInterval: INTERVAL })
  })

  t.test('an instance that disappears without closing stops counting within 3 intervals', async (t) => {
    const name = uniqueName('crash')
    // Longer than the suite's interval, so that the slack for a loaded machine (Redis running
    // the cut instance's last publication late) stays small beside the bound.
    const interval = 300
    const survivor = await startApp(t, { bus: redisBus({ url: REDIS_URL, prefix, presenceInterval: interval }) })
    // The instance that will vanish: its own Redis client, which is cut as a crash would.
    const client = testClient()
    await client.connect()
    const logs = new LogCapture()
    const doomed = await startApp(t, { bus: redisBus({ client, prefix, presenceInterval: interval }) }, () => {}, { logger: logs.logger })
    const kept = survivor.app.sse.channel(name).subscribe()
    const gone = [doomed.app.sse.channel(name).subscribe(), doomed.app.sse.channel(name).subscribe()]
    await Promise.all([kept.ready, ...gone.map((subscription) => subscription.ready)])
    const channel = survivor.app.sse.channel(name)
    t.equal(await countReaches(() => channel.subscribers(), 3), 3, 'both instances count')

    client.disconnect() // no QUIT, no last publication: its fields stay in Redis until their deadline
    await new Promise((resolve) => setTimeout(resolve, 3 * interval + 150))
    t.equal(await channel.subscribers(), 1, 'past the bound, only the survivor\'s own')
    const redis = await connectedClient(t)
    t.equal(await redis.hlen(`${prefix}@presence:${name}`), 1, 'the survivor dropped the dead instance\'s field')
    t.ok(await redis.pttl(`${prefix}@presence:${name}`) <= 3 * interval, 'the key expires with the last valid field')
    t.ok(logs.lines.some((line) => String(line.msg).includes('could not publish subscriber counts')), 'the cut instance logs its failed publications')
    await kept.return()
  })

  t.test('presenceInterval is checked; @presence: names are reserved', async (t) => {
    t.throws(() => redisBus({ presenceInterval: 5 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
    t.throws(() => redisBus({ presenceInterval: 1.5 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
    const { app } = await startApp(t, { bus: redisBus({ url: REDIS_URL, prefix }) })
    t.throws(() => app.sse.channel('@presence:news'), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL' })
  })
}
