// HEAD answers the event-stream head and holds nothing: it never runs the source (or ends it at
// once) and does not count against maxConnections.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { closeApp, connectClient, eventually, EventReader, fastifyDefaultClose, startApp } from '../support/index.js'

// Only turns a hang into a failed assertion: generous, for a loaded machine.
const PROMPT = 10_000

for (const protocol of ['http1', 'http2'] as const) {
  t.test(`${protocol} · maxConnections 2: ten HEAD requests, then a GET still streams`, async (t) => {
    let started = 0
    let finished = 0
    const { app } = await startApp(t, { maxConnections: 2 }, (app) => {
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
    }, { http2: protocol === 'http2', ...fastifyDefaultClose })
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

    const closed = await closeApp(app, client, 5_000)
    t.ok(closed.inTime, 'app.close() resolves within 5 s')
    t.ok(closed.afterDrop, 'app.close() resolves once the clients are gone')
  })
}
