import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { streamEvents } from 'fastify-conduit/testing'
import { aiChat, Done, Token } from '../../example/ai-chat.ts'
import { answer } from '../../example/assistant.ts'
import { FrameReader, startPackageApp } from '../support/index.js'

async function start (t: Test): Promise<FastifyInstance> {
  return (await startPackageApp(t, {}, (app) => { app.register(aiChat, { delay: 1 }) })).app
}

const tokens = answer('hello')
const events = { token: Token, done: Done }

t.test('streams the answer as token events, then done (the exact frames)', async (t) => {
  const app = await start(t)
  const frames = await (await FrameReader.open(app.listeningOrigin + '/ai/chat?prompt=hello')).all()
  t.same(frames, [
    ...tokens.map((text, i) => `event: token\nid: ${i}\ndata: ${JSON.stringify({ text })}\n\n`),
    `event: done\nid: ${tokens.length}\ndata: {"reason":"stop"}\n\n`
  ])
})

t.test('as a test reads it: typed events, injected or over HTTP', async (t) => {
  const app = await start(t)
  for (const transport of ['http', 'inject'] as const) {
    const stream = await streamEvents(app, '/ai/chat', { query: { prompt: 'hello' }, events, transport })
    const received = await stream.collect()
    t.same(received.map((event) => event.event === 'token' ? event.data.text : event.data.reason), [...tokens, 'stop'], transport)
  }
})

t.test('a reconnecting client resumes after Last-Event-ID; after done it gets 204', async (t) => {
  const app = await start(t)
  const stream = await streamEvents(app, '/ai/chat?prompt=hello', { events, lastEventId: '4' })
  const received = await stream.collect()
  t.same(received[0], { event: 'token', data: { text: tokens[5] }, id: '5' })
  t.equal(received.length, tokens.length - 5 + 1)
  t.equal((await streamEvents(app, '/ai/chat?prompt=hello', { lastEventId: stream.lastEventId })).statusCode, 204)
})

t.test('a missing prompt is a 400, not a stream', async (t) => {
  const stream = await streamEvents(await start(t), '/ai/chat')
  t.equal(stream.statusCode, 400)
  t.match(JSON.parse(stream.text as string), { code: 'FST_ERR_VALIDATION' })
})
