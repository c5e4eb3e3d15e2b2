import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { Progress } from '@modelcontextprotocol/sdk/types.js'
import type { IncomingMessage } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { memoryBus } from 'fastify-conduit'
import t, { type Test } from 'tap'
import { buildDemo } from '../../example/demo/server.ts'
import { mcp } from '../../example/mcp.ts'
import { FrameReader, startPackageApp } from '../support/index.js'

async function start (t: Test, sessionIdleTimeout?: number): Promise<string> {
  const bus = memoryBus()
  return (await startPackageApp(t, { bus }, (app) => { app.register(mcp, { bus, delay: 5, sessionIdleTimeout }) })).url
}

const text = 'Streams are great. Streams resume. Events carry ids!'

t.test('the official MCP client lists and calls the tool, and gets each progress notification', async (t) => {
  const url = await start(t)
  const client = new Client({ name: 'test', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(url + '/mcp')))
  t.teardown(() => client.close())

  t.same(client.getServerVersion(), { name: 'fastify-conduit-mcp-example', version: '1.0.0' })
  const { tools } = await client.listTools()
  t.same(tools.map((tool) => tool.name), ['text_stats'])
  t.equal(tools[0].inputSchema.type, 'object')

  const progress: Progress[] = []
  const result = await client.callTool({ name: 'text_stats', arguments: { text } }, undefined, {
    onprogress: (update) => progress.push(update)
  })
  t.same(progress, [
    { progress: 1, total: 3, message: 'Sentence 1 of 3' },
    { progress: 2, total: 3, message: 'Sentence 2 of 3' },
    { progress: 3, total: 3, message: 'Sentence 3 of 3' }
  ])
  t.same(result.structuredContent, {
    sentences: 3,
    words: 8,
    characters: text.length,
    topWords: [{ word: 'streams', count: 2 }, { word: 'carry', count: 1 }, { word: 'events', count: 1 }, { word: 'great', count: 1 }, { word: 'ids', count: 1 }]
  })
  t.same(result.content, [{ type: 'text', text: '8 words in 3 sentences' }])

  const invalid = await client.callTool({ name: 'text_stats', arguments: { text: '' } })
  t.equal(invalid.isError, true, 'invalid arguments are a tool error the model can read')
  await t.rejects(client.callTool({ name: 'nope', arguments: {} }), { code: -32602 })
})

t.test('the wire: SSE message events whose ids come from the event store; sessions; Origin checked', async (t) => {
  const url = await start(t)
  const post = (body: unknown, headers: Record<string, string> = {}): Promise<Response> => fetch(url + '/mcp', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body)
  })
  const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }
  const response = await post(initialize)
  t.match(response.headers.get('content-type'), /^text\/event-stream/)
  const session = response.headers.get('mcp-session-id') as string
  t.match(session, /^[\w-]+$/)
  const frame = (await response.text()).trim()
  // `<stream id>.<bus id>`: fastify-conduit's mcpEventStore numbered it.
  t.match(frame, /^event: message\nid: [\w-]+\.\S+\ndata: \{"result":\{"protocolVersion":"2025-06-18"/)

  const noSession = await post({ jsonrpc: '2.0', id: 2, method: 'tools/list' })
  t.equal(noSession.status, 400, 'a request outside a session is refused')
  const foreign = await post({ jsonrpc: '2.0', id: 3, method: 'tools/list' }, { origin: 'http://evil.example', 'mcp-session-id': session })
  t.equal(foreign.status, 403, 'another origin is refused')
  const ended = await fetch(url + '/mcp', { method: 'DELETE', headers: { 'mcp-session-id': session } })
  t.equal(ended.status, 200, 'the client ends its session')
  const after = await post({ jsonrpc: '2.0', id: 4, method: 'tools/list' }, { 'mcp-session-id': session })
  t.equal(after.status, 404, 'an ended session is not found (the client then starts a new one)')
})

t.test('idle sessions end after sessionIdleTimeout; a session with its GET stream open does not', async (t) => {
  const url = await start(t, 300)
  const open = async (): Promise<{ client: Client, transport: StreamableHTTPClientTransport }> => {
    const client = new Client({ name: 'test', version: '1.0.0' })
    const transport = new StreamableHTTPClientTransport(new URL(url + '/mcp'))
    await client.connect(transport)
    t.teardown(() => client.close())
    return { client, transport }
  }
  const listed = async (session: string): Promise<number> => (await fetch(url + '/mcp', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' })
  })).status
  // The SDK client opens its GET stream after connecting: that session stays in use.
  const streaming = await open()
  // A session used by POSTs only, each over once answered: it goes idle.
  const quiet = await fetch(url + '/mcp', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } })
  })
  const quietSession = quiet.headers.get('mcp-session-id') as string
  await quiet.text()
  t.equal(await listed(quietSession), 200, 'a fresh session answers')
  // Each look is a request, which makes the session busy again: look after longer and longer
  // silences (a loaded machine may run the sweep late), up to about 20 s in all.
  let status = 200
  for (let silence = 500; status === 200 && silence <= 10_000; silence *= 2) {
    await new Promise((resolve) => setTimeout(resolve, silence))
    status = await listed(quietSession)
  }
  t.equal(status, 404, 'left without a request for sessionIdleTimeout, it ends: 404')
  const streamingSession = streaming.transport.sessionId as string
  t.equal(await listed(streamingSession), 200, 'the session whose GET stream is open is still there')
  const { tools } = await streaming.client.listTools()
  t.same(tools.map((tool) => tool.name), ['text_stats'], 'and its client goes on')
})

t.test("the demo's /mcp: the SDK client, cut in the middle of a tool call's progress, resumes and gets every notification and the result once", async (t) => {
  const app = await buildDemo()
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const sockets = new Set<Socket>()
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  const resumptions: string[] = []
  app.server.on('request', (request: IncomingMessage) => {
    const lastEventId = request.headers['last-event-id']
    if (request.method === 'GET' && typeof lastEventId === 'string') resumptions.push(lastEventId)
  })
  const client = new Client({ name: 'test', version: '1.0.0' })
  // The client waits a second before reconnecting: the tool (300 ms a sentence in the demo)
  // reports meanwhile, and those reports can only reach it replayed from the event store.
  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/mcp`), {
    reconnectionOptions: { initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1, maxRetries: 5 }
  })
  await client.connect(transport)
  t.teardown(() => client.close())
  const sentences = Array.from({ length: 8 }, (_, index) => `Sentence number ${index + 1} is here.`)
  const progress: Progress[] = []
  const result = await client.callTool({ name: 'text_stats', arguments: { text: sentences.join(' ') } }, undefined, {
    onprogress: (update) => {
      progress.push(update)
      // The network goes: every connection of the client is cut.
      if (update.progress === 2) for (const socket of sockets) socket.destroy()
    },
    resetTimeoutOnProgress: true
  })
  t.same(progress, sentences.map((_, index) => ({ progress: index + 1, total: 8, message: `Sentence ${index + 1} of 8` })))
  t.same(result.content, [{ type: 'text', text: '40 words in 8 sentences' }])
  t.ok(resumptions.length >= 1, 'the client resumed, with Last-Event-ID')
})

t.test('the browser widget: tool_progress, tool_result, tool_complete', async (t) => {
  const url = await start(t)
  const frames = await (await FrameReader.open(url + '/mcp/tools/execute?text=' + encodeURIComponent('One. Two.'))).all()
  t.same(frames.slice(0, 3), [
    'event: tool_progress\ndata: {"status":"running","progress":1,"total":2,"message":"Sentence 1 of 2"}\n\n',
    'event: tool_progress\ndata: {"status":"running","progress":2,"total":2,"message":"Sentence 2 of 2"}\n\n',
    'event: tool_result\ndata: {"tool":"text_stats","result":{"sentences":2,"words":2,"characters":9,"topWords":[{"word":"one","count":1},{"word":"two","count":1}]}}\n\n'
  ])
  t.match(frames[3], /^event: tool_complete\ndata: \{"durationMs":\d+\}\n\n$/)
  t.equal(frames.length, 4)
})
