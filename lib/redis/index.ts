export { redisBus } from './bus.js'
export type { RedisBusOptions } from './options.js'
