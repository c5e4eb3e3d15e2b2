// Headers the application set before reply.sse come out as it set them, its Cache-Control
// included: `no-transform` keeps proxies from compressing or buffering the stream.
import t from 'tap'
import { closeApp, connectClient, EventReader, fastifyDefaultClose, startApp } from '../support/index.js'

// Only turns a hang into a failed assertion: generous, for a loaded machine.
const PROMPT = 10_000

for (const protocol of ['http1', 'http2'] as const) {
  t.test(`${protocol} · headers set before reply.sse are kept`, async (t) => {
    const { app } = await startApp(t, {}, (app) => {
      app.addHook('onRequest', (request, reply, done) => {
        reply.header('x-request-id', request.id)
        done()
      })
      app.get('/stream', (request, reply) => {
        reply.header('cache-control', 'no-cache, no-transform')
        reply.header('x-app', 'kept')
        return reply.sse([{ id: '1', data: 'one' }])
      })
    }, { http2: protocol === 'http2', ...fastifyDefaultClose })
    const client = connectClient(app, protocol, PROMPT)

    const res = await client.request('/stream', 'GET', {})
    const reader = new EventReader(res.body)
    t.equal(res.status, 200, 'status 200')
    t.match(res.headers['content-type'], /^text\/event-stream/, 'content-type text/event-stream')
    t.equal(res.headers['cache-control'], 'no-cache, no-transform', "the app's cache-control, unchanged")
    t.equal(res.headers['x-app'], 'kept', 'set in the handler')
    t.match(res.headers['x-request-id'], /./, 'set in an onRequest hook')
    t.ok(await reader.end(PROMPT), 'the response ends')
    t.same(reader.events, [{ event: 'message', id: '1', data: 'one' }], 'the event arrives')

    const closed = await closeApp(app, client, 5_000)
    t.ok(closed.inTime, 'app.close() resolves within 5 s')
    t.ok(closed.afterDrop, 'app.close() resolves once the clients are gone')
  })
}
