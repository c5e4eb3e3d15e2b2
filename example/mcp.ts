// MCP (Model Context Protocol) tools with progress, streamed over SSE, two ways:
// - /mcp speaks MCP's Streamable HTTP transport through the official SDK
//   (`StreamableHTTPServerTransport`, sessions included): the tool's `notifications/progress`
//   while it works, then the result, as SSE `message` events. Its `eventStore` is
//   fastify-conduit's `mcpEventStore` on the app's bus, so a client whose stream is cut mid-call
//   reconnects with Last-Event-ID and gets every notification and the result once. Any MCP
//   client can connect, e.g. the official SDK's StreamableHTTPClientTransport.
// - GET /mcp/tools/execute?text=… runs the same tool for a browser's EventSource, with the
//   events `tool_progress`, `tool_result` and `tool_complete`.
// Run it with `npx tsx example/mcp.ts`, then
// `curl -N 'http://127.0.0.1:3000/mcp/tools/execute?text=One.%20Two%20words.'`.
import Fastify, { type FastifyPluginAsync, type FastifyRequest } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { CallToolRequestSchema, ErrorCode, isInitializeRequest, ListToolsRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js'
import fastifyConduit, { memoryBus, type Bus } from 'fastify-conduit'
import { mcpEventStore } from 'fastify-conduit/mcp'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'

// The tool: goes through a text one sentence at a time (standing in for slow work: an API
// call, a file read per step) and reports progress after each.
const TextStatsInput = Type.Object({ text: Type.String({ minLength: 1, maxLength: 2000, description: 'The text to analyze' }) })
const TextStats = Type.Object({
  sentences: Type.Integer(),
  words: Type.Integer(),
  characters: Type.Integer(),
  topWords: Type.Array(Type.Object({ word: Type.String(), count: Type.Integer() }))
})
type ToolStep =
  | { type: 'progress', progress: number, total: number, message: string }
  | { type: 'result', stats: Static<typeof TextStats> }

const textStatsTool = {
  name: 'text_stats',
  title: 'Text statistics',
  description: 'Counts the sentences, words and characters of a text and finds its most frequent words, reporting progress per sentence.',
  inputSchema: TextStatsInput,
  outputSchema: TextStats
}
const STOP_WORDS = new Set(['a', 'an', 'and', 'are', 'as', 'at', 'be', 'by', 'for', 'in', 'is', 'it', 'of', 'on', 'or', 'that', 'the', 'to', 'with'])

async function * textStats ({ text }: Static<typeof TextStatsInput>, { delay, signal }: { delay: number, signal?: AbortSignal }): AsyncGenerator<ToolStep> {
  const sentences = text.split(/(?<=[.!?])\s+/).filter((sentence) => sentence.trim() !== '')
  const counts = new Map<string, number>()
  let words = 0
  for (const [index, sentence] of sentences.entries()) {
    await sleep(delay, undefined, { signal })
    for (const word of sentence.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? []) {
      words++
      if (!STOP_WORDS.has(word)) counts.set(word, (counts.get(word) ?? 0) + 1)
    }
    yield { type: 'progress', progress: index + 1, total: sentences.length, message: `Sentence ${index + 1} of ${sentences.length}` }
  }
  const topWords = [...counts].sort(([a, m], [b, n]) => n - m || a.localeCompare(b)).slice(0, 5).map(([word, count]) => ({ word, count }))
  yield { type: 'result', stats: { sentences: sentences.length, words, characters: text.length, topWords } }
}

const checkInput = TypeCompiler.Compile(TextStatsInput)

/**
 * An MCP server (the official SDK's) offering the tool: `tools/list`, and `tools/call`, which
 * sends a `notifications/progress` per sentence when the client asked for progress.
 */
function textStatsServer (delay: number): Server {
  const server = new Server({ name: 'fastify-conduit-mcp-example', version: '1.0.0' }, { capabilities: { tools: {} } })
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [textStatsTool] }))
  server.setRequestHandler(CallToolRequestSchema, async ({ params }, { signal, sendNotification }) => {
    if (params.name !== textStatsTool.name) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${params.name}`)
    if (!checkInput.Check(params.arguments)) {
      const reason = checkInput.Errors(params.arguments).First()
      return { isError: true, content: [{ type: 'text', text: `Invalid arguments: ${reason?.path ?? ''} ${reason?.message ?? ''}` }] }
    }
    const progressToken = params._meta?.progressToken
    let stats: Static<typeof TextStats> | undefined
    for await (const step of textStats(params.arguments, { delay, signal })) {
      if (step.type === 'result') stats = step.stats
      else if (progressToken !== undefined) {
        const { progress, total, message } = step
        await sendNotification({ method: 'notifications/progress', params: { progressToken, progress, total, message } })
      }
    }
    const { words, sentences } = stats as Static<typeof TextStats>
    return { content: [{ type: 'text', text: `${words} words in ${sentences} sentences` }], structuredContent: stats }
  })
  return server
}

// The transport spec asks servers to check Origin: otherwise any web page the user opens could
// drive a server on localhost (DNS rebinding).
function fromOtherOrigin (request: FastifyRequest): boolean {
  const origin = request.headers.origin
  return origin !== undefined && (!URL.canParse(origin) || new URL(origin).host !== request.headers.host)
}

export interface McpOptions {
  /** The bus fastify-conduit was registered with: it keeps the MCP streams' events for resumption. */
  bus: Bus
  /** Milliseconds of (simulated) work per sentence. Default 300. */
  delay?: number
}

export const mcp: FastifyPluginAsync<McpOptions> = async (app, { bus, delay = 300 }) => {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  // Every MCP stream's messages go on the bus under event ids: a client whose stream was cut
  // reconnects (GET with Last-Event-ID) and gets what it missed, then the rest, once.
  const eventStore = mcpEventStore({ bus })
  // Sessions live in this process until the client ends them (DELETE) or the server closes; a
  // production server would also expire idle ones.
  const sessions = new Map<string, StreamableHTTPServerTransport>()

  // Streamable HTTP: POST (requests), GET (the server's stream, and resumption), DELETE (end of
  // the session), all on /mcp; the SDK's transport answers them on the raw response.
  routes.route({
    method: ['GET', 'POST', 'DELETE'],
    url: '/mcp',
    handler: async (request, reply) => {
      if (fromOtherOrigin(request)) return reply.code(403).send()
      const sessionId = request.headers['mcp-session-id']
      let transport = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined
      if (transport === undefined && request.method === 'POST' && isInitializeRequest(request.body)) {
        const created = new StreamableHTTPServerTransport({
          sessionIdGenerator: randomUUID,
          eventStore,
          onsessioninitialized: (id) => { sessions.set(id, created) }
        })
        created.onclose = () => { if (created.sessionId !== undefined) sessions.delete(created.sessionId) }
        await textStatsServer(delay).connect(created)
        transport = created
      }
      if (transport === undefined) {
        return reply.code(400).send({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Bad Request: no valid session; initialize first' } })
      }
      reply.hijack()
      await transport.handleRequest(request.raw, reply.raw, request.body)
    }
  })
  app.addHook('onClose', async () => {
    await Promise.all([...sessions.values()].map((transport) => transport.close()))
  })

  routes.get('/mcp/tools/execute', {
    schema: {
      querystring: TextStatsInput,
      sse: {
        tool_progress: Type.Object({ status: Type.Literal('running'), progress: Type.Integer(), total: Type.Integer(), message: Type.String() }),
        tool_result: Type.Object({ tool: Type.String(), result: TextStats }),
        tool_complete: Type.Object({ durationMs: Type.Integer() })
      }
    }
  }, (request, reply) => reply.sse(async function * ({ signal }) {
    const started = performance.now()
    for await (const step of textStats(request.query, { delay, signal })) {
      if (step.type === 'progress') {
        yield { event: 'tool_progress', data: { status: 'running', progress: step.progress, total: step.total, message: step.message } }
      } else {
        yield { event: 'tool_result', data: { tool: textStatsTool.name, result: step.stats } }
      }
    }
    yield { event: 'tool_complete', data: { durationMs: Math.round(performance.now() - started) } }
  }))
}

if (import.meta.filename === process.argv[1]) {
  const app = Fastify({ logger: true })
  const bus = memoryBus() // or redisBus() from fastify-conduit/redis: any instance can replay
  await app.register(fastifyConduit, { bus })
  await app.register(mcp, { bus })
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
