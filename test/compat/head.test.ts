// HEAD answers the event-stream head and holds nothing: it never runs the source (or ends it at
// once) and does not count against maxConnections.
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import fastifyConduit from '../../lib/index.js'
import { connectClient, eventually, EventReader, within } from '../support/index.js'

const PROMPT = 2_000

for (const protocol of ['http1', 'http2'] as const) {
  t.test(`${protocol} · maxConnections 2: ten HEAD requests, then a GET still streams`, async (t) => {
    const app = (protocol === 'http2' ? Fastify({ http2: true }) : Fastify()) as unknown as FastifyInstance
    await app.register(fastifyConduit, { heartbeat: false, maxConnections: 2 })
    let started = 0
    let finished = 0
    // A feed: what is there now, then it waits for more until the client leaves.
    app.get('/feed', (request, reply) => reply.sse(async function * ({ signal }) {
      started++
      try {
        yield { id: '1', data: 'one' }
        yield { id: '2', data: 'two' }
        await sleep(60_000, undefined, { signal }).catch(() => {})
      } finally {
        finished++
      }
    }))
    await app.listen({ host: '127.0.0.1', port: 0 })
    const client = connectClient(app, protocol, PROMPT)

    for (let i = 0; i < 10; i++) {
      const res = await client.request('/feed', 'HEAD', {})
      const reader = new EventReader(res.body)
      t.equal(res.status, 200, `HEAD ${i + 1}: status 200`)
      t.match(res.headers['content-type'], /^text\/event-stream/, `HEAD ${i + 1}: content-type text/event-stream`)
      t.ok(await reader.end(PROMPT), `HEAD ${i + 1}: the response ends`)
      t.equal(reader.bytes, 0, `HEAD ${i + 1}: no body`)
    }
    t.ok(await eventually(() => app.sse.stats().openStreams === 0, PROMPT), 'no stream is held open')
    t.equal(started, finished, 'every source a HEAD started has ended')
    t.equal(app.sse.stats().rejectedStreams, 0, 'no request was refused')

    const res = await client.request('/feed', 'GET', {})
    const reader = new EventReader(res.body)
    t.equal(res.status, 200, 'GET: status 200')
    t.ok(await reader.received(2, PROMPT), 'GET: its events arrive')
    t.same(reader.events, [{ event: 'message', id: '1', data: 'one' }, { event: 'message', id: '2', data: 'two' }], 'GET: every event, once, in order')
    res.close()

    client.end()
    const closing = app.close()
    t.ok(await within(closing, 5_000), 'app.close() resolves within 5 s')
    client.destroy()
    await closing
  })
}
