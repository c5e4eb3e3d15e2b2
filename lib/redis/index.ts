export { redisBus } from './bus.js'
export type { RedisBus, RedisBusStats } from './bus.js'
export type { RedisBusOptions } from './options.js'
