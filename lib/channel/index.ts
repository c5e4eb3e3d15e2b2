export { memoryBus } from './memory-bus.js'
export type { MemoryBusOptions } from './memory-bus.js'
export type { Channel, ChannelSelection } from './channel.js'
export type { MergeableChannel, MergedChannels, MergedMessage } from './merged.js'
export type { Bus, BusEntry, BusListener, BusListening, BusLogger, BusReplay } from './bus.js'
export type {
  ChannelMessage,
  ChannelOptions,
  ChannelPublishMessage,
  ChannelSubscription,
  SubscribeOptions
} from './types.js'
