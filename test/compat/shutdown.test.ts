// A client that stops reading a fast, endless stream must not hold app.close(): queued bytes get
// a short grace period, then the connection is destroyed.
import t from 'tap'
import { connectClient, deferred, eventually, fastifyDefaultClose, startApp, within } from '../support/index.js'

const BIG = 'x'.repeat(64 * 1024)

for (const protocol of ['http1', 'http2'] as const) {
  t.test(`${protocol} · app.close() with a client that stopped reading`, async (t) => {
    const finished = deferred()
    const { app } = await startApp(t, {}, (app) => {
      app.get('/firehose', (request, reply) => reply.sse(async function * () {
        try {
          for (let i = 0; ; i++) yield { id: String(i), data: BIG }
        } finally {
          finished.resolve()
        }
      }))
    }, { http2: protocol === 'http2', ...fastifyDefaultClose })
    const client = connectClient(app, protocol, 2_000)

    const res = await client.request('/firehose', 'GET', {})
    t.equal(res.status, 200, 'status 200')
    res.body.pause()
    // The socket and the client's buffers fill within milliseconds; then bytes wait on the server.
    t.ok(await eventually(() => app.sse.stats().queuedBytes > 0, 5_000), 'the stream is backed up behind the client')

    const closing = app.close()
    t.ok(await within(closing, 10_000), 'app.close() resolves within 10 s')
    t.ok(await within(finished.promise, 1_000), "the source's finally ran")
    // Whatever failed, let the process exit.
    client.destroy()
    await closing
  })
}
