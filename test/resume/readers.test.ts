import t from 'tap'
import { deferred, eventually, FrameReader, startApp } from '../support/index.js'
import { pausedClients, proofScale, recordProof } from '../support/proof.js'
import { collector, settledHeap } from '../stream/churn.js'

// Readers of one long resumable record (8 MB) that do not read (300 here, 1,000 in the soak): each reader's replay is
// paced by its socket, so the server holds about a page per reader, not the record per reader
// (1,000 × 8 MB). Readers that then read get the whole record, in order, then the end.

t.test('readers of one long record (300; 1,000 in the soak): memory bounded by readers × a page, not readers × the record', async (t) => {
  const gc = collector()
  // 300 in npm test (each new reader first fills ~1 MB of kernel buffers: 1,000 took over
  // 2 min on a loaded 2-core machine); 1,000 in the soak.
  const readers = proofScale(300, 1000)
  const events = 2000
  const payload = 'r'.repeat(4096)
  const release = deferred()
  const { app, port } = await startApp(t, { maxConnections: 100_000 }, (app) => {
    app.get('/answer', (request, reply) => reply.sse(async function * () {
      for (let n = 0; n < events; n++) yield { data: payload }
      await release.promise
    }, { resume: { key: 'answer', maxEvents: events + 10, maxBytes: 64 * 1024 * 1024 } }))
    app.get('/attach', (request, reply) => reply.sse(app.sse.resumable('answer')))
  })
  // The first request starts the record; it reads the whole of it.
  const first = await FrameReader.open(`http://127.0.0.1:${port}/answer`)
  t.teardown(() => first.close())
  const recorded = await first.take(events)
  t.equal(recorded.length, events, 'the record holds every event')
  const baseline = await settledHeap(gc)

  const sockets = pausedClients(t, port, '/attach', readers)
  // Slow to open on a loaded machine: each new reader's replay first fills its socket's kernel
  // buffers (about 1 MB on loopback) while the others are accepted.
  t.ok(await eventually(() => app.sse.stats().openStreams === readers + 1, 120_000), `${readers} readers attached (${app.sse.stats().openStreams} streams open)`)
  // Until the replays stop moving: every socket's kernel buffers and every stream's queue full.
  let sent = -1
  while (app.sse.stats().sentEvents !== sent) {
    sent = app.sse.stats().sentEvents
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  const held = await settledHeap(gc) - baseline
  // Per reader: the stream's 64 KiB queue, one 32 KiB batch and one event on top, 1 KiB of state.
  const perReader = 64 * 1024 + 32 * 1024 + payload.length + 1024
  const fixed = 48 * 1024 * 1024
  const recordBytes = events * payload.length
  t.ok(held <= readers * perReader + fixed,
    `held ${(held / 1024 / 1024).toFixed(1)} MB: at most ${readers} × ${(perReader / 1024).toFixed(0)} KiB + 48 MB, not ${readers} × ${(recordBytes / 1024 / 1024).toFixed(1)} MB`)
  t.ok(sent < (readers + 1) * events, `the replays wait for their readers (${sent} events sent of ${readers * events})`)

  // Some readers now read: the whole record, in order; then the source ends and so do they.
  const reading = sockets.slice(0, 5).map((socket) => {
    const reader = new FrameReader()
    socket.setEncoding('utf8')
    socket.on('data', (text: string) => reader.push(text))
    socket.on('close', () => reader.end())
    socket.resume()
    return reader
  })
  const replayed = await Promise.all(reading.map((reader) => reader.take(events)))
  const ids = recorded.map((frame) => frame.id).join()
  t.ok(recorded.every((frame) => frame.id !== undefined && frame.data === payload), 'the record as the source yielded it, with ids')
  t.equal(replayed.filter((frames) => frames.map((frame) => frame.id).join() === ids).length, reading.length,
    'each got the whole record, in order')
  for (const socket of sockets.slice(5)) socket.destroy()
  release.resolve()
  t.ok(await eventually(() => app.sse.stats().openStreams === 0, 30_000), 'every stream ended with the source')
  recordProof('resume-readers', { readers, events, recordBytes, heldBytes: held, boundBytes: readers * perReader + fixed, sentWhilePaused: sent })
})
