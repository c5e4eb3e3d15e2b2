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

t.test('resumable answers: started once by id, attached to after an id from the URL, 204 when read or unknown', async (t) => {
  const app = (await startPackageApp(t, { lastEventIdQuery: 'lastEventId' }, (app) => { app.register(aiChat, { delay: 1 }) })).app
  const first = await (await streamEvents(app, '/ai/answers/answer-1?prompt=hello', { events, transport: 'http' })).collect()
  t.same(first.map((event) => event.event === 'token' ? event.data.text : event.data.reason), [...tokens, 'stop'])
  t.ok(first.every((event) => event.id !== ''), 'the bus numbered every event')
  // The same id again: the same record (not a second answer, whatever the prompt).
  const again = await (await streamEvents(app, '/ai/answers/answer-1?prompt=something%20else', { events, transport: 'http' })).collect()
  t.same(again, first)
  const rest = await (await streamEvents(app, `/ai/answers/answer-1/resume?lastEventId=${encodeURIComponent(first[2].id)}`, { events, transport: 'http' })).collect()
  t.same(rest, first.slice(3), 'after the id in the URL: the rest')
  t.equal((await app.inject(`/ai/answers/answer-1/resume?lastEventId=${encodeURIComponent(first.at(-1)!.id)}`)).statusCode, 204, 'read to the end')
  t.equal((await app.inject('/ai/answers/answer-2/resume')).statusCode, 204, 'never started')
  t.equal((await app.inject('/ai/answers/x/resume')).statusCode, 400, 'not an answer id')
})
