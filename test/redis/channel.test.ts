import t from 'tap'
import { redisBus } from '../../lib/redis/index.js'
import { channelSuite } from '../channel/suite.js'
import { deleteKeys, needRedis, REDIS_URL, testPrefix } from './helpers.js'

// The shared channel suite on Redis Streams: every instance gets its own redisBus (its own two
// connections), and instances share channels through one Redis and one key prefix.
if (await needRedis(t)) {
  const prefix = testPrefix()
  t.teardown(() => deleteKeys(prefix))
  channelSuite(t, {
    create: (options) => redisBus({ url: REDIS_URL, prefix, ...options }),
    peer: () => redisBus({ url: REDIS_URL, prefix })
  })
}
