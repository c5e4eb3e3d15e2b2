import fastifyConduit from './plugin.js'

export default fastifyConduit
export { fastifyConduit }
export type {
  CompressOptions,
  FastifyConduitOptions,
  InvalidEventPolicy,
  ResumableMessage,
  ResumeOptions,
  SSEDecorator,
  SSEReplyOptions,
  SSESource,
  SSEStats,
  SSEStreamOptions
} from './types.js'
export { formatEvent, SSEEvent, SSEStream } from './format/index.js'
export type { SSEHeadersOptions } from './format/index.js'
export type { SSEMessage } from './wire/index.js'
export { compileRouteEvents } from './schema/index.js'
export type { EventFormatter, EventSchemas } from './schema/index.js'
export type { RouteMessage, SchemaMessage } from './schema/types.js'
export type { SourceContext } from './stream/source.js'
export { memoryBus } from './channel/index.js'
export type {
  Bus,
  BusEntry,
  BusListener,
  BusListening,
  BusLogger,
  BusReplay,
  Channel,
  ChannelMessage,
  ChannelOptions,
  ChannelPublishMessage,
  ChannelSelection,
  ChannelSubscription,
  MemoryBusOptions,
  MergeableChannel,
  MergedChannels,
  MergedMessage,
  SubscribeOptions
} from './channel/index.js'
export type { ResumableRecord } from './resume/records.js'
export * as errors from './errors.js'
export { openapiEventStreamFallback } from './openapi.js'
export type { OpenAPIDocument } from './openapi.js'
export { diagnosticsChannels } from './diagnostics.js'
export type {
  BusErrorMessage,
  InvalidEventMessage,
  ReplayGapMessage,
  SlowSubscriberMessage,
  StreamCloseMessage,
  StreamEndReason,
  StreamInfo,
  StreamOpenMessage
} from './diagnostics.js'
