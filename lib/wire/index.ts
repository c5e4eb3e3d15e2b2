export type { SSEMessage } from './message.js'
export { WireError } from './errors.js'
export type { WireErrorType, WireField } from './errors.js'
export { assertComment, assertEventName, assertId, assertMessage, assertRetry, describe } from './guards.js'
export {
  COMMENT,
  commentLines,
  DATA,
  EVENT,
  eventField,
  fieldLines,
  formatEvent,
  headFields,
  ID,
  idField,
  RETRY,
  retryField,
  stringifyData
} from './format.js'
export { HTTP1_HEADERS, HTTP2_HEADERS } from './headers.js'
