export { connect } from './connect.js'
export type {
  ConduitEvent,
  ConnectOptions,
  EventSchemas,
  EventStream,
  FetchLike,
  ReconnectInfo,
  ReconnectOptions,
  ReplayableBody,
  TypedEvent
} from './connect.js'
export { EventStreamParser } from './parser.js'
export type { ParsedEvent } from './parser.js'
export {
  ClientContentTypeError,
  ClientInvalidDataError,
  ClientNetworkError,
  ClientOptionError,
  ClientStatusError,
  ClientUndeclaredEventError,
  ConduitClientError
} from './errors.js'
export type { ConduitClientErrorType } from './errors.js'
