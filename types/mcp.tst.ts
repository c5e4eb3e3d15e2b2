import type { EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { expect, test } from 'tstyche'
import { memoryBus } from 'fastify-conduit'
import { mcpEventStore } from 'fastify-conduit/mcp'
import type { McpEventStore, McpEventStoreOptions } from 'fastify-conduit/mcp'

test('mcpEventStore is an EventStore of the MCP SDK', () => {
  expect<EventStore>().type.toBeAssignableFrom(mcpEventStore({ bus: memoryBus() }))
  expect(mcpEventStore({ bus: memoryBus(), history: 100, ttl: 60_000 })).type.toBe<McpEventStore>()
  expect(mcpEventStore({})).type.toRaiseError("'bus' is missing")
  expect(mcpEventStore({ bus: memoryBus(), ttl: '1m' })).type.toRaiseError('not assignable')
  expect<McpEventStoreOptions>().type.toBeAssignableFrom({ bus: memoryBus() })
})
