import t from 'tap'
import { redisBus } from '../../lib/redis/index.js'
import { resumeSuite } from '../resume/suite.js'
import { deleteKeys, needRedis, REDIS_URL, testPrefix } from './helpers.js'

// The resumable-stream suite on Redis: every instance has its own redisBus, as separate
// processes would, and they meet through one Redis and one key prefix.
if (await needRedis(t)) {
  const prefix = testPrefix()
  t.teardown(() => deleteKeys(prefix))
  resumeSuite(t, {
    create: () => redisBus({ url: REDIS_URL, prefix }),
    peer: () => redisBus({ url: REDIS_URL, prefix })
  })
}
