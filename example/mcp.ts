// MCP (Model Context Protocol) tools with progress, streamed over SSE, two ways:
// - POST /mcp speaks MCP's Streamable HTTP transport: JSON-RPC requests come in as POST
//   bodies; when the client accepts text/event-stream, the answer is an SSE stream of `message`
//   events: the tool's `notifications/progress` while it works, then the JSON-RPC response.
//   Any MCP client can connect, e.g. the official SDK's StreamableHTTPClientTransport.
// - GET /mcp/tools/execute?text=… runs the same tool for a browser's EventSource, with the
//   events `tool_progress`, `tool_result` and `tool_complete`.
// Run it with `npx tsx example/mcp.ts`, then
// `curl -N 'http://127.0.0.1:3000/mcp/tools/execute?text=One.%20Two%20words.'`.
import Fastify, { type FastifyPluginAsync, type FastifyRequest } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import fastifyConduit from 'fastify-conduit'
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

// JSON-RPC 2.0, as MCP uses it. An id is a string or an integer, and goes back exactly as it
// came. What the client sends: requests and notifications.
const Id = Type.Union([Type.String(), Type.Integer()])
const ClientMessage = Type.Object({
  jsonrpc: Type.Literal('2.0'),
  id: Type.Optional(Id),
  method: Type.String(),
  params: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
})
// What the server sends back: the response, and progress notifications before it.
const ServerMessage = Type.Union([
  Type.Object({ jsonrpc: Type.Literal('2.0'), id: Id, result: Type.Record(Type.String(), Type.Unknown()) }),
  Type.Object({ jsonrpc: Type.Literal('2.0'), id: Id, error: Type.Object({ code: Type.Integer(), message: Type.String() }) }),
  Type.Object({
    jsonrpc: Type.Literal('2.0'),
    method: Type.Literal('notifications/progress'),
    params: Type.Object({ progressToken: Id, progress: Type.Number(), total: Type.Number(), message: Type.String() })
  })
])
type Params = Record<string, unknown> & { name?: unknown, arguments?: unknown, _meta?: { progressToken?: string | number } }

// Versions whose Streamable HTTP transport this endpoint implements, newest first.
const PROTOCOL_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26']
const checkInput = TypeCompiler.Compile(TextStatsInput)

/** The messages that answer one request: progress notifications (if asked for), then the response. */
async function * answer (id: string | number, method: string, params: Params, { delay, signal, progress }: { delay: number, signal?: AbortSignal, progress: boolean }): AsyncGenerator<Static<typeof ServerMessage>> {
  switch (method) {
    case 'initialize': {
      // Answer with the client's version when we speak it, else with our newest.
      const asked = String(params.protocolVersion)
      const protocolVersion = PROTOCOL_VERSIONS.includes(asked) ? asked : PROTOCOL_VERSIONS[0]
      yield { jsonrpc: '2.0', id, result: { protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'fastify-conduit-mcp-example', version: '1.0.0' } } }
      return
    }
    case 'ping':
      yield { jsonrpc: '2.0', id, result: {} }
      return
    case 'tools/list':
      yield { jsonrpc: '2.0', id, result: { tools: [textStatsTool] } }
      return
    case 'tools/call': {
      if (params.name !== textStatsTool.name) {
        yield { jsonrpc: '2.0', id, error: { code: -32602, message: `Unknown tool: ${String(params.name)}` } }
        return
      }
      if (!checkInput.Check(params.arguments)) {
        const reason = checkInput.Errors(params.arguments).First()
        const text = `Invalid arguments: ${reason?.path ?? ''} ${reason?.message ?? ''}`
        yield { jsonrpc: '2.0', id, result: { isError: true, content: [{ type: 'text', text }] } }
        return
      }
      const progressToken = progress ? params._meta?.progressToken : undefined
      for await (const step of textStats(params.arguments, { delay, signal })) {
        if (step.type === 'progress') {
          const { progress, total, message } = step
          if (progressToken !== undefined) yield { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken, progress, total, message } }
        } else {
          const text = `${step.stats.words} words in ${step.stats.sentences} sentences`
          yield { jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }], structuredContent: step.stats } }
        }
      }
      return
    }
    default:
      yield { jsonrpc: '2.0', id, error: { code: -32601, message: `Method not found: ${method}` } }
  }
}

// The transport spec asks servers to check Origin: otherwise any web page the user opens could
// drive a server on localhost (DNS rebinding).
function fromOtherOrigin (request: FastifyRequest): boolean {
  const origin = request.headers.origin
  return origin !== undefined && (!URL.canParse(origin) || new URL(origin).host !== request.headers.host)
}

export interface McpOptions {
  /** Milliseconds of (simulated) work per sentence. Default 300. */
  delay?: number
}

export const mcp: FastifyPluginAsync<McpOptions> = async (app, { delay = 300 }) => {
  // TypeBox checks these requests, not Ajv: Ajv's type coercion would turn the id 1 into "1".
  app.setValidatorCompiler(TypeBoxValidatorCompiler)
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()

  routes.post('/mcp', {
    schema: { body: ClientMessage, sse: { message: ServerMessage } }
  }, async (request, reply) => {
    if (fromOtherOrigin(request)) return reply.code(403).send()
    const { id, method, params = {} } = request.body
    // A notification (notifications/initialized, notifications/cancelled) has no id and no answer.
    if (id === undefined) return reply.code(202).send()
    if (request.headers.accept?.includes('text/event-stream') === true) {
      return reply.sse(async function * ({ signal }) {
        for await (const message of answer(id, method, params, { delay, signal, progress: true })) {
          yield { event: 'message', data: message }
        }
      })
    }
    // A client that takes JSON only gets the response alone: progress has nowhere to go.
    const { value } = await answer(id, method, params, { delay, progress: false }).next()
    return value
  })
  // No server-initiated stream and no sessions: 405 is how the spec says so, and clients go on.
  routes.route({ method: ['GET', 'DELETE'], url: '/mcp', handler: (request, reply) => reply.code(405).header('allow', 'POST').send() })

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
  await app.register(fastifyConduit)
  await app.register(mcp)
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
