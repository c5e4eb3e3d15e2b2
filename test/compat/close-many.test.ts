import { fork } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import t from 'tap'
import type { Channel } from '../../lib/index.js'
import { fastifyDefaultClose, startApp, within } from '../support/index.js'
import { proofScale, recordProof } from '../support/proof.js'

// app.close() with many open streams, some stalled behind clients that never read: close()
// resolves, and every reading client sees its response end (the last chunk) before its
// connection closes. `npm run soak` runs it with 10,000 streams and records how long close()
// took (the documented bound is 2 s: closeGracePeriod, 1 s by default, and the ending itself).

t.test('app.close() with many open streams, some stalled: it resolves and every reader sees its end', async (t) => {
  // Stalled clients hold the kernel's socket buffers full (about 850 KB each on loopback here):
  // 2,000 of them put the machine's TCP memory past tcp_mem's pressure threshold (1.5 GB),
  // where the kernel stops accepting connections (the soak stalled at ~8,000). 500 stay under it.
  const reading = proofScale(800, 9500)
  const stalled = proofScale(200, 500)
  const tickMs = proofScale(100, 1000)
  let channel!: Channel
  const { app, port } = await startApp(t, { maxConnections: 100_000, heartbeat: 1000 }, (app) => {
    channel = app.sse.channel('close-many')
    app.get('/channel', (request, reply) => reply.sse(channel))
    app.get('/tick', (request, reply) => reply.sse(async function * ({ signal }) {
      for (let n = 0; !signal.aborted; n++) {
        yield { id: n, data: 'tick' }
        // Once a second in the soak: 4,750 streams at 10 Hz are ~50,000 writes/s, which keeps
        // one core busy on syscalls alone and leaves none for accepting connections.
        await new Promise((resolve) => setTimeout(resolve, tickMs))
      }
    }))
    app.get('/firehose', (request, reply) => reply.sse(async function * () {
      for (let n = 0; ; n++) yield { id: n, data: 'f'.repeat(16 * 1024) }
    }))
  }, fastifyDefaultClose)
  const clients = fork(join(import.meta.dirname, 'close-clients.ts'), [String(port), String(reading), String(stalled)],
    { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  t.teardown(() => { if (clients.exitCode === null) clients.kill() })
  // A client process that fails ends the test instead of leaving it waiting.
  const failed = once(clients, 'exit').then(([code]) => { throw new Error(`the client process exited (${code})`) })
  failed.catch(() => {})
  await Promise.race([once(clients, 'message'), failed])
  t.equal(app.sse.stats().openStreams, reading + stalled, `${reading + stalled} streams open`)
  await channel.publish({ data: 'before close' })

  const started = Date.now()
  const closing = app.close()
  const report = once(clients, 'message')
  t.ok(await within(closing, 30_000), 'app.close() resolved')
  const ms = Date.now() - started
  clients.send('drain')
  // Bounds a failure only: the report comes as soon as every client saw its end.
  const timer = setTimeout(() => clients.send('report'), 20_000)
  const [summary] = await Promise.race([report, failed]) as [{ endedReading: number, stalledClosed: number }]
  clearTimeout(timer)
  t.equal(summary.endedReading, reading, `every reading client saw its response end (${summary.endedReading} of ${reading})`)
  t.equal(summary.stalledClosed, stalled, `every stalled client was disconnected (${summary.stalledClosed} of ${stalled})`)
  t.equal(app.sse.stats().openStreams, 0)
  recordProof('close-many', { streams: reading + stalled, reading, stalled, closeMs: ms })
})
