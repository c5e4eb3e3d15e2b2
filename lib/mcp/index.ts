export { mcpEventStore } from './event-store.js'
export type { McpEventStore, McpEventStoreOptions, McpMessage } from './event-store.js'
