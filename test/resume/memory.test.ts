import t from 'tap'
import { memoryBus } from '../../lib/index.js'
import type { Bus } from '../../lib/index.js'
import { resumeSuite } from './suite.js'

// The resumable-stream suite in one process: a test's instances share one memoryBus.
let current: Bus | undefined
resumeSuite(t, {
  create: () => (current = memoryBus()),
  peer: () => current ?? memoryBus()
})
