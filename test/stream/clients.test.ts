import { Type } from '@sinclair/typebox'
import { EventSource as NpmEventSource } from 'eventsource'
import t from 'tap'
import { EventSource as UndiciEventSource } from 'undici'
import { startApp } from '../support/index.js'
import type { Teardown } from '../support/index.js'

// Real EventSource implementations read fastify-conduit: what they dispatch is what was sent,
// and their reconnection resumes with Last-Event-ID.

interface Received { type: string, data: string, lastEventId: string }

type AnyEventSource = NpmEventSource | UndiciEventSource
const clients: Array<[string, (url: string) => AnyEventSource]> = [
  ['eventsource (npm)', (url) => new NpmEventSource(url)],
  ["undici's EventSource", (url) => new UndiciEventSource(url)]
]

const Token = Type.Object({ text: Type.String() })

async function startChat (t: Teardown): Promise<{ url: string, lastIds: Array<string | undefined> }> {
  const lastIds: Array<string | undefined> = []
  const { url } = await startApp(t, { retry: 10 }, (app) => {
    app.get('/chat', { schema: { sse: { token: Token, done: Type.Undefined() } } }, (request, reply) =>
      reply.sse(function * ({ lastEventId }) {
        lastIds.push(lastEventId)
        // The first connection sends tokens 1-2 and drops; the reconnection resumes after the
        // Last-Event-ID the client sends.
        const from = lastEventId === undefined ? 1 : Number(lastEventId) + 1
        const to = lastEventId === undefined ? 2 : 4
        for (let i = from; i <= to; i++) yield { event: 'token', id: String(i), data: { text: `t${i}\nline` } }
        if (lastEventId !== undefined) yield { event: 'done', id: '5' }
      }))
  })
  return { url: url + '/chat', lastIds }
}

for (const [name, open] of clients) {
  t.test(name, async (t) => {
    const { url, lastIds } = await startChat(t)
    const source = open(url)
    const received: Received[] = []
    await new Promise<void>((resolve) => {
      source.addEventListener('token', (e) => {
        const event = e as MessageEvent
        received.push({ type: event.type, data: event.data, lastEventId: event.lastEventId })
      })
      source.addEventListener('done', (e) => {
        const event = e as MessageEvent
        received.push({ type: event.type, data: event.data, lastEventId: event.lastEventId })
        source.close()
        resolve()
      })
    })
    t.same(received, [
      { type: 'token', data: '{"text":"t1\\nline"}', lastEventId: '1' },
      { type: 'token', data: '{"text":"t2\\nline"}', lastEventId: '2' },
      { type: 'token', data: '{"text":"t3\\nline"}', lastEventId: '3' },
      { type: 'token', data: '{"text":"t4\\nline"}', lastEventId: '4' },
      { type: 'done', data: '', lastEventId: '5' }
    ], 'every event once, in order, across a reconnection')
    t.same(lastIds, [undefined, '2'], 'the reconnection sent Last-Event-ID')
  })
}
