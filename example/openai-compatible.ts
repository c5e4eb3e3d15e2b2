// An OpenAI-compatible endpoint: POST /v1/chat/completions answers with one JSON completion,
// or, with `stream: true`, streams `chat.completion.chunk` objects ending with `data: [DONE]`,
// exactly as OpenAI's API does, so OpenAI's own clients work against it:
//   new OpenAI({ baseURL: 'http://127.0.0.1:3000/v1', apiKey: 'unused' })
// Streams are resumable (OpenAI's own client cannot resume, but others can): each streamed
// completion runs once, whoever is connected, recorded under bus-assigned event ids. The
// response's `x-resume-url` header names GET /v1/chat/completions/<id>/stream, which attaches
// to it after `Last-Event-ID` (an EventSource's reconnection), then live, to `data: [DONE]`.
// A POST with an `Idempotency-Key` header that repeats an earlier one attaches to that
// completion instead of starting another, so a client that re-sends its POST on reconnection
// with `Last-Event-ID` (fastify-conduit/client does) resumes it too.
// Run it with `npx tsx example/openai-compatible.ts`, then
// curl -N http://127.0.0.1:3000/v1/chat/completions -H 'content-type: application/json' \
//   -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"hello"}]}'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import fastifyConduit from 'fastify-conduit'
import { randomUUID } from 'node:crypto'
import { answer, generate } from './assistant.ts'

const Role = Type.Union(['system', 'developer', 'user', 'assistant', 'tool'].map((role) => Type.Literal(role)))
const ChatCompletionRequest = Type.Object({
  model: Type.String(),
  messages: Type.Array(Type.Object({
    role: Role,
    // A string, or content parts ({ type: 'text', text }) as newer clients send.
    content: Type.Union([Type.String(), Type.Null(), Type.Array(Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) }))])
  }), { minItems: 1 }),
  stream: Type.Optional(Type.Boolean()),
  stream_options: Type.Optional(Type.Object({ include_usage: Type.Optional(Type.Boolean()) })),
  max_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
  max_completion_tokens: Type.Optional(Type.Integer({ minimum: 1 }))
})
const FinishReason = Type.Union([Type.Literal('stop'), Type.Literal('length'), Type.Null()])
const Usage = Type.Object({ prompt_tokens: Type.Integer(), completion_tokens: Type.Integer(), total_tokens: Type.Integer() })
export const ChatCompletion = Type.Object({
  id: Type.String(),
  object: Type.Literal('chat.completion'),
  created: Type.Integer(),
  model: Type.String(),
  choices: Type.Array(Type.Object({
    index: Type.Integer(),
    message: Type.Object({ role: Type.Literal('assistant'), content: Type.String(), refusal: Type.Null() }),
    logprobs: Type.Null(),
    finish_reason: FinishReason
  })),
  usage: Usage
})
export const ChatCompletionChunk = Type.Object({
  id: Type.String(),
  object: Type.Literal('chat.completion.chunk'),
  created: Type.Integer(),
  model: Type.String(),
  choices: Type.Array(Type.Object({
    index: Type.Integer(),
    delta: Type.Object({ role: Type.Optional(Type.Literal('assistant')), content: Type.Optional(Type.String()) }),
    logprobs: Type.Null(),
    finish_reason: FinishReason
  })),
  usage: Type.Optional(Type.Union([Usage, Type.Null()]))
})
type Chunk = Static<typeof ChatCompletionChunk>
// Scope idempotency keys to the caller (its API key, its user) in an application: a key is all
// a reader needs.
const Headers = Type.Object({ 'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) })
const StreamParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 255 }) })

export interface OpenAiCompatibleOptions {
  /** Milliseconds between two streamed tokens. Default 40. */
  delay?: number
}

export const openAiCompatible: FastifyPluginAsync<OpenAiCompatibleOptions> = async (app, { delay = 40 }) => {
  app.withTypeProvider<TypeBoxTypeProvider>().post('/v1/chat/completions', {
    // No `schema.sse` here, on purpose. The stream ends with `data: [DONE]`, which is not JSON;
    // with `schema.sse` every `data` is JSON-serialized, so it would go out as `"[DONE]"`, which
    // OpenAI clients do not recognise. Without it, string data is written verbatim and objects
    // as JSON. Validation stays where it counts: Fastify checks the request body against
    // ChatCompletionRequest, the JSON answer is serialized through `schema.response`, and every
    // chunk is built by `chunkOf()`, typed Static<typeof ChatCompletionChunk>, so a chunk of the
    // wrong shape does not compile.
    schema: { body: ChatCompletionRequest, headers: Headers, response: { 200: ChatCompletion } }
  }, async (request, reply) => {
    const { model, messages, stream = false, stream_options: streamOptions } = request.body
    const limit = request.body.max_completion_tokens ?? request.body.max_tokens ?? Infinity
    const prompt = messages.filter((message) => message.role === 'user').map((message) => textOf(message.content)).at(-1) ?? ''
    const tokens = answer(prompt)
    const kept = tokens.slice(0, limit)
    const finishReason: 'stop' | 'length' = kept.length < tokens.length ? 'length' : 'stop'
    const usage = { prompt_tokens: countTokens(messages.map((m) => textOf(m.content)).join(' ')), completion_tokens: kept.length, total_tokens: 0 }
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    const id = `chatcmpl-${randomUUID()}`
    const created = Math.floor(Date.now() / 1000)

    if (!stream) {
      return {
        id,
        object: 'chat.completion' as const,
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant' as const, content: kept.join(''), refusal: null }, logprobs: null, finish_reason: finishReason }],
        usage
      }
    }

    const includeUsage = streamOptions?.include_usage === true
    const chunkOf = (delta: Chunk['choices'][number]['delta'], finish: 'stop' | 'length' | null = null): Chunk => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
      ...(includeUsage ? { usage: null } : {})
    })
    // The stream's name: the client's idempotency key, else the completion's own id.
    const streamId = request.headers['idempotency-key'] ?? id
    reply.header('x-resume-url', `/v1/chat/completions/${encodeURIComponent(streamId)}/stream`)
    return reply.sse(async function * ({ signal }): AsyncGenerator<{ data: Chunk | '[DONE]' }> {
      yield { data: chunkOf({ role: 'assistant', content: '' }) }
      for await (const { text } of generate(kept, { delay, signal })) yield { data: chunkOf({ content: text }) }
      yield { data: chunkOf({}, finishReason) }
      if (includeUsage) yield { data: { ...chunkOf({}), choices: [], usage } }
      yield { data: '[DONE]' }
    }, { resume: { key: `completion:${streamId}` } })
  })

  // Attaches to a streamed completion: what came after Last-Event-ID, then live, to [DONE]. An
  // unknown or expired one, or one read to its end, is a 204 (EventSource stops).
  app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/chat/completions/:id/stream', {
    schema: { params: StreamParams }
  }, (request, reply) => reply.sse(app.sse.resumable(`completion:${request.params.id}`)))
}

function textOf (content: string | null | Array<{ type: string, text?: string }>): string {
  if (content === null) return ''
  if (typeof content === 'string') return content
  return content.map((part) => part.text ?? '').join('')
}

function countTokens (text: string): number {
  return text.match(/\s*\S+/g)?.length ?? 0
}

if (import.meta.filename === process.argv[1]) {
  const app = Fastify({ logger: true })
  await app.register(fastifyConduit)
  await app.register(openAiCompatible)
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
