import { randomUUID } from 'node:crypto'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { CallToolRequestSchema, isInitializeRequest, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import type { Progress } from '@modelcontextprotocol/sdk/types.js'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import { memoryBus } from '../../lib/index.js'
import type { Bus } from '../../lib/index.js'
import { mcpEventStore } from '../../lib/mcp/index.js'
import { redisBus } from '../../lib/redis/index.js'
import { deleteKeys, needRedis, REDIS_URL, testPrefix } from '../redis/helpers.js'
import { deferred, startApp } from '../support/index.js'

const STEPS = 6

/**
 * The official SDK's server on a Fastify route, with fastify-conduit's EventStore. Its one tool
 * reports progress STEPS times; after the second report, `drop` cuts the client's stream (the
 * way a network change does, or cleanly as the SDK's closeSSEStream does), and reports 3 and
 * 4 go out while the client is away; the tool goes on once the client came back.
 */
async function mcpApp (t: Test, bus: Bus, drop: 'close' | 'destroy', sawSecond: { promise: Promise<void> }): Promise<string> {
  const transports = new Map<string, StreamableHTTPServerTransport>()
  const eventStore: EventStore = mcpEventStore({ bus })
  let lastPost: import('node:http').ServerResponse | undefined
  const resumed = deferred()
  const { url } = await startApp(t, { bus }, (app: FastifyInstance) => {
    app.all('/mcp', async (request, reply) => {
      const sessionId = request.headers['mcp-session-id'] as string | undefined
      let transport = sessionId === undefined ? undefined : transports.get(sessionId)
      if (transport === undefined && request.method === 'POST' && isInitializeRequest(request.body)) {
        const created = new StreamableHTTPServerTransport({
          sessionIdGenerator: randomUUID,
          eventStore,
          onsessioninitialized: (id) => { transports.set(id, created) }
        })
        created.onclose = () => { if (created.sessionId !== undefined) transports.delete(created.sessionId) }
        const server = new Server({ name: 'resume-test', version: '1.0.0' }, { capabilities: { tools: {} } })
        server.setRequestHandler(ListToolsRequestSchema, async () => ({
          tools: [{ name: 'count', inputSchema: { type: 'object' as const, properties: {} } }]
        }))
        server.setRequestHandler(CallToolRequestSchema, async (call, extra) => {
          const progressToken = call.params._meta?.progressToken as string | number
          for (let step = 1; step <= STEPS; step++) {
            await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: step, total: STEPS } })
            if (step === 2) {
              // Cut once the client has the second report (not while it is still in buffers).
              await sawSecond.promise
              if (drop === 'close') extra.closeSSEStream?.()
              else lastPost?.socket?.destroy()
            }
            // Steps 3 and 4 are sent while the client is away: it can only get them replayed.
            if (step === 4) await resumed.promise
          }
          return { content: [{ type: 'text' as const, text: `counted to ${STEPS}` }] }
        })
        await server.connect(created)
        transport = created
      }
      if (transport === undefined) return reply.code(400).send({ error: 'no session' })
      if (request.method === 'POST') lastPost = reply.raw
      if (request.method === 'GET' && request.headers['last-event-id'] !== undefined) resumed.resolve()
      reply.hijack()
      await transport.handleRequest(request.raw, reply.raw, request.body)
    })
  })
  t.teardown(async () => {
    for (const transport of transports.values()) await transport.close()
  })
  return url + '/mcp'
}

async function callCounting (t: Test, url: string, sawSecond: { resolve: () => void }): Promise<{ progress: Progress[], text: unknown }> {
  const client = new Client({ name: 'test', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    reconnectionOptions: { initialReconnectionDelay: 10, maxReconnectionDelay: 50, reconnectionDelayGrowFactor: 1, maxRetries: 20 }
  })
  await client.connect(transport)
  t.teardown(() => client.close())
  const progress: Progress[] = []
  const result = await client.callTool({ name: 'count', arguments: {} }, undefined, {
    onprogress: (update) => {
      progress.push(update)
      if (update.progress === 2) sawSecond.resolve()
    },
    resetTimeoutOnProgress: true
  })
  return { progress, text: (result.content as Array<{ text: string }>)[0].text }
}

const everyStep = Array.from({ length: STEPS }, (_, index) => ({ progress: index + 1, total: STEPS }))

async function suite (t: Test, bus: () => Bus): Promise<void> {
  for (const drop of ['close', 'destroy'] as const) {
    t.test(`the SDK client resumes a tool call whose stream was cut (${drop}): every notification and the result once`, async (t) => {
      const sawSecond = deferred()
      const url = await mcpApp(t, bus(), drop, sawSecond)
      const { progress, text } = await callCounting(t, url, sawSecond)
      t.same(progress, everyStep)
      t.equal(text, `counted to ${STEPS}`)
    })
  }
}

t.test('memoryBus', (t) => suite(t, () => memoryBus()))

t.test('redisBus', async (t) => {
  if (!await needRedis(t)) return
  const prefix = testPrefix()
  t.teardown(() => deleteKeys(prefix))
  await suite(t, () => redisBus({ url: REDIS_URL, prefix }))
})

t.test('the event store refuses event ids it did not make, and keeps streams apart', async (t) => {
  const store = mcpEventStore({ bus: memoryBus() })
  const a1 = await store.storeEvent('a', { jsonrpc: '2.0', method: 'one' })
  await store.storeEvent('b', { jsonrpc: '2.0', method: 'other stream' })
  await store.storeEvent('a', { jsonrpc: '2.0', method: 'two' })
  t.equal(await store.getStreamIdForEventId(a1), 'a')
  t.equal(await store.getStreamIdForEventId('nodot'), undefined)
  const sent: unknown[] = []
  t.equal(await store.replayEventsAfter(a1, { send: async (id, message) => { sent.push(message) } }), 'a')
  t.same(sent, [{ jsonrpc: '2.0', method: 'two' }])
  await t.rejects(store.replayEventsAfter('nodot', { send: async () => {} }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => mcpEventStore({ bus: {} as Bus }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: /option "bus"/ })
  t.throws(() => mcpEventStore({ bus: memoryBus(), ttl: 0 }), { message: /option "ttl"/ })
})
