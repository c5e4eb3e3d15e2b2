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
  /**
   * Milliseconds a session may go without a request in progress before the server ends it
   * (its transport closed, its id answered 404 from then on, as the Streamable HTTP transport
   * says a terminated session is). A session with a request or its GET stream open is never
   * idle. Default 1,800,000 (30 minutes).
   */
  sessionIdleTimeout?: number
}

/** One MCP session: its transport, the requests it has in progress, and when the last ended. */
interface Session {
  readonly transport: StreamableHTTPServerTransport
  active: number
  idleSince: number
}

export const mcp: FastifyPluginAsync<McpOptions> = async (app, { bus, delay = 300, sessionIdleTimeout = 30 * 60_000 }) => {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  // Every MCP stream's messages go on the bus under event ids: a client whose stream was cut
  // reconnects (GET with Last-Event-ID) and gets what it missed, then the rest, once.
  const eventStore = mcpEventStore({ bus })
  // Sessions live in this process until the client ends them (DELETE), they stay idle for
  // sessionIdleTimeout, or the server closes. Ended ones are remembered (ids only, until the
  // server closes; a real server would keep them in a store with an expiry) so that their
  // requests get 404, on which a client starts a new session.
  const sessions = new Map<string, Session>()
  const ended = new Set<string>()
  const end = (id: string, session: Session): void => {
    sessions.delete(id)
    ended.add(id)
    session.transport.close().catch((err: unknown) => app.log.error({ err }, 'mcp: closing an idle session failed'))
  }
  const sweeper = setInterval(() => {
    const now = Date.now()
    for (const [id, session] of sessions) {
      if (session.active === 0 && now - session.idleSince >= sessionIdleTimeout) end(id, session)
    }
  }, Math.max(10, Math.min(sessionIdleTimeout / 2, 60_000))).unref()

  // Streamable HTTP: POST (requests), GET (the server's stream, and resumption), DELETE (end of
  // the session), all on /mcp; the SDK's transport answers them on the raw response.
  routes.route({
    method: ['GET', 'POST', 'DELETE'],
    url: '/mcp',
    handler: async (request, reply) => {
      if (fromOtherOrigin(request)) return reply.code(403).send()
      const sessionId = request.headers['mcp-session-id']
      let session = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined
      if (session === undefined && typeof sessionId === 'string' && ended.has(sessionId)) {
        return reply.code(404).send({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found: it ended; initialize a new one' } })
      }
      if (session === undefined && request.method === 'POST' && isInitializeRequest(request.body)) {
        const created: Session = {
          transport: new StreamableHTTPServerTransport({
            sessionIdGenerator: randomUUID,
            eventStore,
            onsessioninitialized: (id) => { sessions.set(id, created) }
          }),
          active: 0,
          idleSince: Date.now()
        }
        created.transport.onclose = () => {
          const id = created.transport.sessionId
          if (id !== undefined && sessions.delete(id)) ended.add(id)
        }
        await textStatsServer(delay).connect(created.transport)
        session = created
      }
      if (session === undefined) {
        return reply.code(400).send({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Bad Request: no valid session; initialize first' } })
      }
      reply.hijack()
      // In progress until its response is over: a GET stream keeps its session from going idle.
      const current = session
      current.active++
      reply.raw.once('close', () => {
        current.active--
        current.idleSince = Date.now()
      })
      await current.transport.handleRequest(request.raw, reply.raw, request.body)
    }
  })
  app.addHook('onClose', async () => {
    clearInterval(sweeper)
    await Promise.all([...sessions.values()].map((session) => session.transport.close()))
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
