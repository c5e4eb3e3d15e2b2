import t from 'tap'
import { memoryBus } from '../../lib/index.js'
import { mergedSuite } from './merged-suite.js'

// Several channels on one stream, on the in-process bus (two instances share one memoryBus()).
mergedSuite(t, {
  create: (options) => memoryBus(options),
  peer: (bus) => bus
})
