import { Type } from '@sinclair/typebox'
import { test } from 'tap'
import { connect, type ReconnectInfo } from '../../lib/client/index.ts'
import { startApp } from '../support/index.js'

// The client reading a fastify-conduit route: the same schemas on both ends, the server's
// retry honoured, a reconnection resumed with Last-Event-ID, and a 204 to stop.

const Token = Type.Object({ text: Type.String() })
const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })

test('connect() reads a fastify-conduit route across a reconnection', async (t) => {
  const lastIds: Array<string | undefined> = []
  const { url } = await startApp(t, { retry: 5 }, (app) => {
    app.get('/chat', { schema: { sse: { token: Token, done: Done, ping: Type.Undefined() } } }, (request, reply) => {
      const lastEventId = request.headers['last-event-id'] as string | undefined
      lastIds.push(lastEventId)
      // After `done` the server has nothing more: 204 tells the client not to come back.
      if (lastEventId === '5') return reply.code(204).send()
      return reply.sse(function * ({ lastEventId }) {
        // The first response sends tokens 1-2 and ends; the client reconnects and resumes.
        const from = lastEventId === undefined ? 1 : Number(lastEventId) + 1
        const to = lastEventId === undefined ? 2 : 4
        for (let i = from; i <= to; i++) yield { event: 'token', id: String(i), data: { text: `t${i}\nline` } }
        if (lastEventId !== undefined) {
          yield { event: 'ping' }
          yield { event: 'done', id: '5', data: { reason: 'stop' } }
        }
      })
    })
  })

  const reconnects: ReconnectInfo[] = []
  const stream = connect(`${url}/chat`, {
    events: { token: Token, done: Done, ping: Type.Undefined() },
    onReconnect: (info) => reconnects.push(info)
  })
  const texts: string[] = []
  const seen: Array<{ event: string, id: string }> = []
  let reason: 'stop' | 'length' | undefined
  for await (const ev of stream) {
    seen.push({ event: ev.event, id: ev.id })
    if (ev.event === 'token') texts.push(ev.data.text)
    else if (ev.event === 'done') reason = ev.data.reason
  }
  t.same(texts, ['t1\nline', 't2\nline', 't3\nline', 't4\nline'], 'every token once, in order')
  t.equal(reason, 'stop')
  t.same(seen.map((e) => e.event), ['token', 'token', 'token', 'token', 'ping', 'done'])
  t.same(seen.map((e) => e.id), ['1', '2', '3', '4', '4', '5'])
  t.same(lastIds, [undefined, '2', '5'], 'each reconnection sent Last-Event-ID')
  t.equal(reconnects.length, 2)
  for (const { delay } of reconnects) t.ok(delay >= 2.5 && delay <= 7.5, `the plugin's retry is honoured, with jitter: ${delay}`)
  t.equal(stream.lastEventId, '5')
})

test('a route without schema: data arrives as the text the server wrote', async (t) => {
  const { url } = await startApp(t, {}, (app) => app.get('/plain', (request, reply) => reply.sse([
    { data: 'line 1\r\nline 2' },
    { event: 'json', data: { a: 1 } }
  ])))
  const events = []
  for await (const ev of connect(`${url}/plain`, { reconnect: false })) events.push(ev)
  t.same(events, [
    { event: 'message', data: 'line 1\nline 2', id: '' },
    { event: 'json', data: '{"a":1}', id: '' }
  ])
})
