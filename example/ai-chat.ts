// ChatGPT-style streaming: GET /ai/chat?prompt=… answers with one `token` event per token,
// then `done`. Run it with `npx tsx example/ai-chat.ts`, then
// `curl -N 'http://127.0.0.1:3000/ai/chat?prompt=hello'`.
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import fastifyConduit from 'fastify-conduit'
import { answer, generate } from './assistant.ts'

const Query = Type.Object({ prompt: Type.String({ minLength: 1, maxLength: 2000 }) })
export const Token = Type.Object({ text: Type.String() })
export const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })

export interface AiChatOptions {
  /** Milliseconds between two tokens. Default 40. */
  delay?: number
}

export const aiChat: FastifyPluginAsync<AiChatOptions> = async (app, { delay = 40 }) => {
  app.withTypeProvider<TypeBoxTypeProvider>().get('/ai/chat', {
    schema: { querystring: Query, sse: { token: Token, done: Done } }
  }, (request, reply) => {
    const tokens = answer(request.query.prompt)
    // Token i has id i and `done` has id tokens.length. A client that reconnects mid-answer
    // resumes after the last token it saw; one that saw `done` is told to stop (204).
    const after = Number.parseInt(String(request.headers['last-event-id']), 10)
    const from = Number.isSafeInteger(after) && after >= 0 ? after + 1 : 0
    if (from > tokens.length) return reply.code(204).send()
    return reply.sse(async function * ({ signal }) {
      for await (const { index, text } of generate(tokens, { from, delay, signal })) {
        yield { event: 'token', id: index, data: { text } }
      }
      yield { event: 'done', id: tokens.length, data: { reason: 'stop' } }
    })
  })
}

if (import.meta.filename === process.argv[1]) {
  const app = Fastify({ logger: true })
  await app.register(fastifyConduit)
  await app.register(aiChat)
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
