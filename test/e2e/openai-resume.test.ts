import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import { EventSource } from 'eventsource'
import OpenAI from 'openai'
import t, { type Test } from 'tap'
import { connect } from 'fastify-conduit/client'
import { answer } from '../../example/assistant.ts'
import { openAiCompatible } from '../../example/openai-compatible.ts'
import { startPackageApp } from '../support/index.js'

// The OpenAI-compatible endpoint's streams are resumable: OpenAI's own client streams as
// always; fastify-conduit's client (re-sending its POST with an Idempotency-Key) and a raw
// EventSource (on the x-resume-url route) are cut mid-stream and resume, getting each chunk once.

const prompt = 'How does reconnecting work?'
const expected = answer(prompt).join('')
const request = { model: 'demo', stream: true as const, messages: [{ role: 'user' as const, content: prompt }] }

/** The endpoint, with retry 50 ms (EventSource's reconnection delay), and `drop()`, which cuts every connection. */
async function start (t: Test): Promise<{ url: string, drop: () => void }> {
  const { app, url } = await startPackageApp(t, { retry: 50 }, (app) => { app.register(openAiCompatible, { delay: 20 }) })
  const sockets = new Set<Socket>()
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  return { url, drop: () => { for (const socket of sockets) socket.destroy() } }
}

/** What a client received, checked: every chunk of one completion once, in order, then [DONE]. */
function checkChunks (t: Test, data: string[], ids: string[]): void {
  t.equal(data.at(-1), '[DONE]', 'ends with [DONE]')
  t.equal(data.filter((item) => item === '[DONE]').length, 1, '[DONE] once')
  const chunks = data.slice(0, -1).map((item) => JSON.parse(item))
  t.equal(chunks.map((chunk) => chunk.choices[0].delta.content ?? '').join(''), expected, 'every token once, in order')
  t.equal(chunks.length, answer(prompt).length + 2, 'the role chunk, one chunk per token, the finish chunk')
  t.equal(new Set(chunks.map((chunk) => chunk.id)).size, 1, 'one completion: generated once')
  t.equal(chunks.at(-1).choices[0].finish_reason, 'stop')
  t.equal(new Set(ids).size, ids.length, 'no event id twice')
}

t.test('the openai client streams as usual; the response names where to resume', async (t) => {
  const { url } = await start(t)
  const client = new OpenAI({ baseURL: url + '/v1', apiKey: 'unused', maxRetries: 0 })
  const { data: stream, response } = await client.chat.completions.create(request).withResponse()
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
  t.equal(text, expected)
  const resumeUrl = response.headers.get('x-resume-url') as string
  t.match(resumeUrl, /^\/v1\/chat\/completions\/chatcmpl-[\w-]+\/stream$/)
  // After the end, within the record's ttl, the whole completion is still there.
  const replay = await fetch(url + resumeUrl)
  t.match(await replay.text(), /data: \[DONE\]\n\n$/)
})

t.test('fastify-conduit/client: cut mid-stream, it re-sends the POST with Last-Event-ID and the Idempotency-Key, and resumes', async (t) => {
  const { url, drop } = await start(t)
  const data: string[] = []
  const ids: string[] = []
  let reconnects = 0
  const stream = connect(url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID() },
    body: JSON.stringify(request),
    reconnect: { minDelay: 10, maxDelay: 50 },
    onReconnect: () => { reconnects++ }
  })
  for await (const event of stream) {
    data.push(event.data)
    ids.push(event.id)
    if (data.length === 5) drop()
  }
  t.ok(reconnects >= 1, 'it was cut and reconnected')
  checkChunks(t, data, ids)
})

t.test('a raw EventSource on x-resume-url: cut mid-stream, it reconnects with Last-Event-ID and resumes', async (t) => {
  const { url, drop } = await start(t)
  const started = await fetch(url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(request)
  })
  const resumeUrl = started.headers.get('x-resume-url') as string
  // The POST's own reader goes away: the completion goes on without it.
  await started.body?.cancel()
  const data: string[] = []
  const ids: string[] = []
  let opened = 0
  const source = new EventSource(url + resumeUrl)
  t.teardown(() => source.close())
  await new Promise<void>((resolve) => {
    source.onopen = () => { opened++ }
    source.onmessage = (event) => {
      data.push(event.data)
      ids.push(event.lastEventId)
      if (data.length === 5) drop()
    }
    // After [DONE] the response ends; EventSource reconnects, is answered 204, and stops.
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) resolve() }
  })
  t.ok(opened >= 2, 'it was cut and reconnected')
  checkChunks(t, data, ids)
})
