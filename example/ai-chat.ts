// ChatGPT-style streaming, two ways:
// - GET /ai/chat?prompt=… answers with one `token` event per token, then `done`; the answer is
//   generated for this connection, and a reconnecting client resumes by the token index.
// - GET /ai/answers/:id?prompt=… starts answer `id` as a resumable stream: it is generated
//   once, whoever is connected, and recorded on the bus. GET /ai/answers/:id/resume attaches to
//   it (never starts anything) after `Last-Event-ID`, or `?lastEventId=` after a page reload:
//   the demo page keeps an answer going across reloads this way.
// Run it with `npx tsx example/ai-chat.ts`, then
// `curl -N 'http://127.0.0.1:3000/ai/chat?prompt=hello'`, or
// `curl -N 'http://127.0.0.1:3000/ai/answers/a1b2c3d4?prompt=hello'`, stop it, and
// `curl -N 'http://127.0.0.1:3000/ai/answers/a1b2c3d4/resume?lastEventId=<the last id seen>'`.
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import fastifyConduit from 'fastify-conduit'
import { answer, generate } from './assistant.ts'

const Query = Type.Object({ prompt: Type.String({ minLength: 1, maxLength: 2000 }) })
// The answer's id, chosen by the client (the page uses crypto.randomUUID()). With users, put the
// user in the key too (`answer:<user>:<id>`): a key is all a reader needs.
const AnswerParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9-]{8,64}$' }) })
export const Token = Type.Object({ text: Type.String() })
export const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })
const events = { token: Token, done: Done }

export interface AiChatOptions {
  /** Milliseconds between two tokens. Default 40. */
  delay?: number
}

export const aiChat: FastifyPluginAsync<AiChatOptions> = async (app, { delay = 40 }) => {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  routes.get('/ai/chat', {
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

  // Starts answer `id` (once: a second request with the id, on any instance sharing the bus,
  // reads the same record instead), then streams it. The answer goes on when the client goes.
  // Its events carry no id: the bus numbers the record.
  routes.get('/ai/answers/:id', {
    schema: { params: AnswerParams, querystring: Query, sse: events }
  }, (request, reply) => {
    const { id } = request.params
    return reply.sse(async function * ({ signal }) {
      request.log.info({ answer: id }, 'answer started')
      for await (const { text } of generate(answer(request.query.prompt), { delay, signal })) {
        yield { event: 'token', data: { text } }
      }
      yield { event: 'done', data: { reason: 'stop' } }
    }, { resume: { key: `answer:${id}` } })
  })

  // Attaches to answer `id`: what came after Last-Event-ID (the header, or `?lastEventId=` with
  // the plugin's `lastEventIdQuery: 'lastEventId'`), then live, until `done`. An unknown or
  // expired answer, or one the client read to the end, is a 204: EventSource stops.
  routes.get('/ai/answers/:id/resume', {
    schema: { params: AnswerParams, sse: events }
  }, (request, reply) => reply.sse(app.sse.resumable(`answer:${request.params.id}`)))
}

if (import.meta.filename === process.argv[1]) {
  const app = Fastify({ logger: true })
  await app.register(fastifyConduit, { lastEventIdQuery: 'lastEventId' })
  await app.register(aiChat)
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
