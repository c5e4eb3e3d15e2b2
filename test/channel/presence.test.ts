import t from 'tap'
import { memoryBus } from '../../lib/index.js'
import { presenceSuite } from './presence-suite.js'

// Presence on the in-process bus: two Fastify instances share one memoryBus().
presenceSuite(t, {
  create: (options) => memoryBus(options),
  peer: (bus) => bus
})
