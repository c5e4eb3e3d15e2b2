export { connect } from './connect.js'
export type { ClientEventStream, EventStream } from './event-stream.js'
export type { ConduitEvent, EventSchemas, TypedEvent } from './events.js'
export type { ConnectOptions, FetchLike, GapInfo, HeadersOption, ReconnectInfo, ReconnectOptions, ReplayableBody } from './options.js'
export { EventStreamParser } from './parser.js'
export type { ParsedEvent, ParserOptions } from './parser.js'
export {
  ClientContentTypeError,
  ClientEventTooLargeError,
  ClientIdleTimeoutError,
  ClientInvalidDataError,
  ClientNetworkError,
  ClientOptionError,
  ClientStatusError,
  ClientUndeclaredEventError,
  ConduitClientError
} from './errors.js'
export type { ConduitClientErrorType } from './errors.js'
