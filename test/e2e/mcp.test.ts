import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { Progress } from '@modelcontextprotocol/sdk/types.js'
import t, { type Test } from 'tap'
import { mcp } from '../../example/mcp.ts'
import { FrameReader, startPackageApp } from '../support/index.js'

async function start (t: Test): Promise<string> {
  return (await startPackageApp(t, {}, (app) => { app.register(mcp, { delay: 5 }) })).url
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

t.test('the wire: SSE message events when accepted, JSON otherwise, ids kept as sent', async (t) => {
  const url = await start(t)
  const post = (body: unknown, accept: string): Promise<Response> => fetch(url + '/mcp', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept },
    body: JSON.stringify(body)
  })
  const call = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'text_stats', arguments: { text: 'One. Two.' }, _meta: { progressToken: 'p' } } }

  const streamed = await post(call, 'application/json, text/event-stream')
  t.match(streamed.headers.get('content-type'), /^text\/event-stream/)
  const frames = (await streamed.text()).split('\n\n').filter((frame) => frame !== '')
  t.same(frames.map((frame) => JSON.parse(frame.replace(/^data: /, ''))), [
    { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: 1, total: 2, message: 'Sentence 1 of 2' } },
    { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: 2, total: 2, message: 'Sentence 2 of 2' } },
    {
      jsonrpc: '2.0',
      id: 7,
      result: {
        content: [{ type: 'text', text: '2 words in 2 sentences' }],
        structuredContent: { sentences: 2, words: 2, characters: 9, topWords: [{ word: 'one', count: 1 }, { word: 'two', count: 1 }] }
      }
    }
  ])

  const json = await post({ jsonrpc: '2.0', id: '7', method: 'ping' }, 'application/json')
  t.match(json.headers.get('content-type'), /^application\/json/)
  t.same(await json.json(), { jsonrpc: '2.0', id: '7', result: {} }, 'a string id stays a string')

  const unknown = await post({ jsonrpc: '2.0', id: 8, method: 'resources/list' }, 'application/json')
  t.same(await unknown.json(), { jsonrpc: '2.0', id: 8, error: { code: -32601, message: 'Method not found: resources/list' } })

  const notification = await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, 'application/json, text/event-stream')
  t.equal(notification.status, 202)
  t.equal(await notification.text(), '')

  const get = await FrameReader.open(url + '/mcp')
  t.equal(get.response.statusCode, 405, 'no server-initiated stream')
  get.close()

  const foreign = await fetch(url + '/mcp', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', origin: 'http://evil.example' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' })
  })
  t.equal(foreign.status, 403, 'another origin is refused')
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
