import t from 'tap'
import { redisBus } from '../../lib/redis/index.js'
import { mergedSuite } from '../channel/merged-suite.js'
import { deleteKeys, needRedis, REDIS_URL, testPrefix } from './helpers.js'

// Several channels on one stream, on Redis: two instances, each with its own redisBus.
if (await needRedis(t)) {
  const prefix = testPrefix()
  t.teardown(() => deleteKeys(prefix))
  mergedSuite(t, {
    create: (options) => redisBus({ url: REDIS_URL, prefix, ...options }),
    peer: () => redisBus({ url: REDIS_URL, prefix })
  })
}
