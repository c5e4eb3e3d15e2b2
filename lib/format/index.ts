export { formatEvent } from './format.js'
export { SSEEvent, SSEStream } from './event.js'
export type { SSEHeadersOptions } from './event.js'
