import { Value } from '@sinclair/typebox/value'
import OpenAI from 'openai'
import t, { type Test } from 'tap'
import { answer } from '../../example/assistant.ts'
import { ChatCompletion, ChatCompletionChunk, openAiCompatible } from '../../example/openai-compatible.ts'
import { startPackageApp } from '../support/index.js'

// OpenAI's own client, pointed at the example, is the test of the wire format.

async function start (t: Test): Promise<string> {
  return (await startPackageApp(t, {}, (app) => { app.register(openAiCompatible, { delay: 1 }) })).url
}

const messages = [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'hello' }]
const expected = answer('hello').join('')

t.test('the openai client streams chunks from it', async (t) => {
  const client = new OpenAI({ baseURL: (await start(t)) + '/v1', apiKey: 'unused', maxRetries: 0 })
  const stream = await client.chat.completions.create({ model: 'demo', messages, stream: true })
  let text = ''
  const finishReasons = []
  for await (const chunk of stream) {
    t.ok(Value.Check(ChatCompletionChunk, chunk), 'every chunk matches ChatCompletionChunk')
    t.equal(chunk.object, 'chat.completion.chunk')
    text += chunk.choices[0]?.delta.content ?? ''
    finishReasons.push(chunk.choices[0]?.finish_reason)
  }
  t.equal(text, expected)
  t.equal(finishReasons.at(-1), 'stop')
  t.ok(finishReasons.slice(0, -1).every((reason) => reason === null))
})

t.test('with include_usage, the last chunk carries usage and no choices', async (t) => {
  const client = new OpenAI({ baseURL: (await start(t)) + '/v1', apiKey: 'unused', maxRetries: 0 })
  const stream = await client.chat.completions.create({ model: 'demo', messages, stream: true, max_tokens: 3, stream_options: { include_usage: true } })
  const chunks = []
  for await (const chunk of stream) chunks.push(chunk)
  const last = chunks.at(-1)
  t.same(last?.choices, [])
  t.same(last?.usage, { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 })
  t.equal(chunks.at(-2)?.choices[0].finish_reason, 'length', 'max_tokens cut the answer')
  t.ok(chunks.slice(0, -1).every((chunk) => chunk.usage === null))
})

t.test('without stream, one JSON completion', async (t) => {
  const client = new OpenAI({ baseURL: (await start(t)) + '/v1', apiKey: 'unused', maxRetries: 0 })
  const completion = await client.chat.completions.create({ model: 'demo', messages })
  t.ok(Value.Check(ChatCompletion, completion))
  t.equal(completion.choices[0].message.content, expected)
  t.equal(completion.choices[0].finish_reason, 'stop')
})

t.test('the bytes on the wire: data-only frames, ending with data: [DONE]', async (t) => {
  const url = await start(t)
  const response = await fetch(url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'demo', messages, stream: true, max_tokens: 2 })
  })
  t.match(response.headers.get('content-type'), /^text\/event-stream/)
  const frames = (await response.text()).split('\n\n')
  t.equal(frames.pop(), '', 'the body ends with a blank line')
  t.match(frames.pop(), /^id: [^\n]+\ndata: \[DONE\]$/)
  t.equal(frames.length, 4, 'role, two tokens, finish')
  for (const frame of frames) {
    // The id line is the record's (the stream is resumable); OpenAI's clients ignore it.
    t.match(frame, /^id: [^\n]+\ndata: \{"id":"chatcmpl-[^\n]*\}$/, 'one data line of JSON, no event field')
  }
})

t.test('a request OpenAI would refuse is a 400 that the client raises', async (t) => {
  const client = new OpenAI({ baseURL: (await start(t)) + '/v1', apiKey: 'unused', maxRetries: 0 })
  const err = await client.chat.completions.create({ model: 'demo', messages: [] }).then(() => undefined, (err: unknown) => err)
  t.ok(err instanceof OpenAI.BadRequestError, String(err))
})
