import t, { type Test } from 'tap'
import { aiChat } from '../../example/ai-chat.ts'
import { answer } from '../../example/assistant.ts'
import { FrameReader, startPackageApp } from '../support/index.js'

async function start (t: Test): Promise<string> {
  return (await startPackageApp(t, {}, (app) => { app.register(aiChat, { delay: 1 }) })).url
}

const tokens = answer('hello')

t.test('streams the answer as token events, then done', async (t) => {
  const url = await start(t)
  const frames = await (await FrameReader.open(url + '/ai/chat?prompt=hello')).all()
  t.same(frames, [
    ...tokens.map((text, i) => `event: token\nid: ${i}\ndata: ${JSON.stringify({ text })}\n\n`),
    `event: done\nid: ${tokens.length}\ndata: {"reason":"stop"}\n\n`
  ])
  t.equal(tokens.join(''), answer('hello').join(''))
})

t.test('a reconnecting client resumes after Last-Event-ID; after done it gets 204', async (t) => {
  const url = await start(t)
  const frames = await (await FrameReader.open(url + '/ai/chat?prompt=hello', { 'last-event-id': '4' })).all()
  t.equal(frames[0], `event: token\nid: 5\ndata: ${JSON.stringify({ text: tokens[5] })}\n\n`)
  t.equal(frames.length, tokens.length - 5 + 1)
  const done = await FrameReader.open(url + '/ai/chat?prompt=hello', { 'last-event-id': String(tokens.length) })
  t.equal(done.response.statusCode, 204)
})

t.test('a missing prompt is a 400, not a stream', async (t) => {
  const url = await start(t)
  const reader = await FrameReader.open(url + '/ai/chat')
  t.equal(reader.response.statusCode, 400)
  reader.close()
})
