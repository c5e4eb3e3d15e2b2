import t from 'tap'
import { memoryBus } from '../../lib/index.js'
import { channelSuite } from './suite.js'

// The shared channel suite on the in-process bus; two Fastify instances share channels by
// sharing one memoryBus().
channelSuite(t, {
  create: (options) => memoryBus(options),
  peer: (bus) => bus
})
