import t from 'tap'
import { kAttach } from '../../lib/stream/sink.js'
import type { AttachableSource, StreamSink } from '../../lib/stream/sink.js'
import { deferred, eventually, FrameReader, rawGet, startApp } from '../support/index.js'

// The push side of a stream, as channels use it: frames and shared bytes written into the
// sink, backpressure seen through the return value and `queued`, and the two ways to end.

function attachable (attach: (sink: StreamSink) => Promise<void>): AttachableSource {
  return { [kAttach]: attach }
}

t.test('frames and shared bytes reach the client in order', async (t) => {
  const shared = Buffer.from('event: news\ndata: {"n":2}\n\n')
  const { url } = await startApp(t, { retry: 100 }, (app) => {
    app.get('/push', (request, reply) => reply.sse(attachable(async (sink) => {
      t.equal(sink.lastEventId, '7', 'the sink carries Last-Event-ID')
      t.equal(sink.writable, true)
      await sink.drained() // not backed up: at once
      t.equal(sink.writeFrame('id: 8\ndata: one\n\n'), true)
      t.equal(sink.writeBytes(shared), true, 'the string batch is flushed before the bytes')
      t.equal(sink.writeFrame('data: three\n\n'), true)
      sink.stop()
      t.equal(sink.ended, true)
      t.equal(sink.writeFrame('data: after\n\n'), false, 'nothing is written after the end')
      t.equal(sink.writeBytes(shared), false)
      let ended = false
      sink.onEnd(() => { ended = true })
      t.ok(ended, 'an end listener added after the end is called at once')
      t.equal(sink.context.signal.aborted, true, 'a signal asked for after the end is already aborted')
      t.equal(sink.context.lastEventId, '7')
      t.equal(sink.context.signal, sink.context.signal, 'one signal per stream')
    })))
  })
  const reader = await FrameReader.open(url + '/push', { 'last-event-id': '7' })
  t.same(await reader.all(), ['retry: 100\n\n', 'id: 8\ndata: one\n\n', 'event: news\ndata: {"n":2}\n\n', 'data: three\n\n'])
})

t.test('a sink behind a client that does not read reports backpressure, and abort drops it', async (t) => {
  const dropped = deferred<{ queued: number, closed: boolean }>()
  const bytes = Buffer.from('data: ' + 'x'.repeat(16 * 1024) + '\n\n')
  const bigFrame = 'data: ' + 'z'.repeat(40 * 1024) + '\n\n'
  const { app, port } = await startApp(t, {}, (app) => {
    app.get('/slow', (request, reply) => reply.sse(attachable(async (sink) => {
      // Push until the stream says it is backed up (the client never reads).
      while (sink.writeBytes(bytes)) await new Promise((resolve) => setImmediate(resolve))
      t.equal(sink.writeFrame(bigFrame), false, 'a frame over the batch size is pushed at once, and still backed up')
      t.equal(sink.writable, false)
      const queued = sink.queued
      const closed = new Promise<boolean>((resolve) => sink.context.signal.addEventListener('abort', () => resolve(true)))
      sink.abort()
      dropped.resolve({ queued, closed: await closed })
    })))
  })
  const socket = rawGet(port, '/slow')
  socket.pause()
  const socketClosed = new Promise((resolve) => socket.on('close', resolve))
  const { queued, closed } = await dropped.promise
  t.ok(queued > 0, `the stream had ${queued} bytes queued when it reported backpressure`)
  t.equal(closed, true, 'abort ends the stream')
  socket.resume()
  await socketClosed
  t.pass('the connection was dropped')
  t.equal(app.sse.stats().openStreams, 0)
})

t.test('abort before the response is piped destroys the stream itself', async (t) => {
  const { app, url } = await startApp(t, {}, (app) => {
    // An async onSend hook (compression, say) delays the pipe past the source's first step.
    app.addHook('onSend', async (request, reply, payload) => {
      await new Promise((resolve) => setTimeout(resolve, 10))
      return payload
    })
    app.get('/early-abort', (request, reply) => reply.sse(attachable(async (sink) => { sink.abort() })))
  })
  const res = await fetch(url + '/early-abort').then((r) => r.text()).catch((err: Error) => err)
  t.ok(res === '' || res instanceof Error, 'the client sees an empty or cut response')
  t.equal(app.sse.stats().openStreams, 0)
})

t.test('stats().queuedBytes counts shared bytes while they are queued, and forgets them once the client has read them', async (t) => {
  const bytes = Buffer.from('data: ' + 'y'.repeat(16 * 1024) + '\n\n')
  const backedUp = deferred<StreamSink>()
  const { app, port } = await startApp(t, {}, (app) => {
    app.get('/held', (request, reply) => reply.sse(attachable(async (sink) => {
      while (sink.writeBytes(bytes)) await new Promise((resolve) => setImmediate(resolve))
      backedUp.resolve(sink)
      await sink.drained()
      await new Promise<void>((resolve) => { sink.onEnd(resolve) })
    })))
  })
  const socket = rawGet(port, '/held')
  socket.pause()
  const sink = await backedUp.promise
  const held = app.sse.stats().queuedBytes
  t.ok(held >= bytes.length, `${held} bytes held behind the client that does not read`)
  socket.resume()
  t.ok(await eventually(() => app.sse.stats().queuedBytes === 0, 10_000), 'nothing held once it has read them')
  t.equal(sink.writeBytes(bytes), true, 'written at once to a stream that keeps up')
  t.ok(await eventually(() => app.sse.stats().queuedBytes === 0, 10_000))
  socket.destroy()
})
