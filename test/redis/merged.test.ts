import t from 'tap'
import { redisBus } from '../../lib/redis/index.js'
import { mergedSuite } from '../channel/merged-suite.js'
import { freePort } from '../support/index.js'
import { deleteKeys, killRedis, needRedis, needRedisServer, REDIS_URL, startRedis, testPrefix } from './helpers.js'

// Several channels on one stream, on Redis: two instances, each with its own redisBus.
if (await needRedis(t)) {
  const prefix = testPrefix()
  t.teardown(() => deleteKeys(prefix))
  mergedSuite(t, {
    create: (options) => redisBus({ url: REDIS_URL, prefix, ...options }),
    peer: () => redisBus({ url: REDIS_URL, prefix }),
    // A Redis of the test's own (never the shared one), killed and started again empty.
    losable: needRedisServer(t, 'losing a whole Redis dataset')
      ? async (t) => {
        const port = await freePort()
        let redis = await startRedis(port)
        t.teardown(() => killRedis(redis))
        return {
          bus: redisBus({ url: `redis://127.0.0.1:${port}`, prefix }),
          lose: async () => {
            await killRedis(redis)
            redis = await startRedis(port)
          }
        }
      }
      : undefined
  })
}
