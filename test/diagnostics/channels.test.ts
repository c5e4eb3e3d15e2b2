import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import t, { type Test } from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { diagnosticsChannels } from '../../lib/index.js'
import type {
  BusErrorMessage,
  InvalidEventMessage,
  ReplayGapMessage,
  SlowSubscriberMessage,
  StreamCloseMessage,
  StreamOpenMessage
} from '../../lib/index.js'
import { observeStream } from '../../lib/diagnostics.js'
import { memoryBus } from '../../lib/channel/memory-bus.js'
import { streamEvents } from '../../lib/testing/index.js'
import { ManualBus } from '../channel/manual-bus.js'
import { FrameReader, RawSubscriber, startApp, take, uniqueName } from '../support/index.js'

/** Every message published on `name` while the test runs, and a way to wait until there are `count`. */
function record<M> (t: Test, name: string): { messages: M[], waitFor: (count: number) => Promise<M[]> } {
  const messages: M[] = []
  let waiting: { count: number, resolve: (messages: M[]) => void } | undefined
  const listener = (message: unknown): void => {
    messages.push(message as M)
    if (waiting !== undefined && messages.length >= waiting.count) {
      waiting.resolve(messages.slice())
      waiting = undefined
    }
  }
  subscribe(name, listener)
  t.teardown(() => unsubscribe(name, listener))
  return {
    messages,
    waitFor: (count) => new Promise((resolve) => {
      if (messages.length >= count) resolve(messages.slice())
      else waiting = { count, resolve }
    })
  }
}

const Token = Type.Object({ text: Type.String() })

function routes (app: FastifyInstance): void {
  app.get('/chat/:room', { schema: { sse: { token: Token } } }, (request, reply) =>
    reply.sse([{ event: 'token', id: '1', data: { text: 'héllo' } }, { comment: 'note' }, { id: '2' }, { event: 'token', data: { text: 'a\nb' } }]))
  app.get('/forever', (request, reply) => reply.sse(async function * ({ signal }) {
    yield { data: 'first' }
    await new Promise((resolve) => signal.addEventListener('abort', resolve))
  }))
  app.get('/throws', (request, reply) => reply.sse(async function * () {
    yield { data: 'one' }
    throw new Error('boom')
  }))
  app.get('/invalid', { schema: { sse: { token: Token } } }, (request, reply) =>
    reply.sse([{ event: 'token', data: { text: 'ok' } }, { event: 'token', data: { text: 7 } as never }, { event: 'token', data: { text: 'after' } }],
      { onInvalid: (request.query as { policy: 'close' | 'skip' }).policy }))
  app.get('/not-a-source', (request, reply) => reply.sse(42 as never))
}

t.test('stream:open and stream:close: the stream, its duration, events, bytes, and why it ended', async (t) => {
  const opened = record<StreamOpenMessage>(t, diagnosticsChannels.streamOpen)
  const closed = record<StreamCloseMessage>(t, diagnosticsChannels.streamClose)
  const { url } = await startApp(t, { retry: 1000, heartbeat: 10 }, routes)
  const response = await fetch(url + '/chat/lobby', { headers: { 'last-event-id': '0' } })
  const body = await response.text()
  const [close] = await closed.waitFor(1)
  const [open] = opened.messages
  t.equal(open.stream, close.stream, 'the same object in both messages')
  t.match(open.stream, { route: '/chat/:room', method: 'GET', lastEventId: '0', channel: undefined })
  t.equal(open.stream.request.url, '/chat/lobby')
  t.equal(close.events, 2, 'events: frames with data, not the comment, the id-only frame or retry')
  t.equal(close.bytes, Buffer.byteLength(body), 'bytes: the body, multibyte characters and retry included')
  t.equal(close.reason, 'end')
  t.ok(close.duration >= 0 && close.duration < 60_000, `duration ${close.duration} ms`)
})

t.test('the reasons: the client went away, the source threw, the server closed', async (t) => {
  const closed = record<StreamCloseMessage>(t, diagnosticsChannels.streamClose)
  const { app } = await startApp(t, {}, routes)
  const left = await streamEvents(app, '/forever', { limit: 1 })
  await left.collect()
  t.match((await closed.waitFor(1))[0], { reason: 'client', events: 1 })
  await (await streamEvents(app, '/throws')).collect()
  t.match((await closed.waitFor(2))[1], { reason: 'error', events: 1 })
  const open = await streamEvents(app, '/forever')
  await open.take(1)
  await app.close()
  t.match((await closed.waitFor(3))[2], { reason: 'server', events: 1 })
  t.equal(open.ended, undefined)
  t.same(await open.collect(), [], 'the client sees the end')
})

t.test('event:invalid: the coded error and the policy; onInvalid close ends the stream with reason invalid', async (t) => {
  const invalid = record<InvalidEventMessage>(t, diagnosticsChannels.invalidEvent)
  const closed = record<StreamCloseMessage>(t, diagnosticsChannels.streamClose)
  const { app } = await startApp(t, {}, routes)
  t.equal((await (await streamEvents(app, '/invalid', { query: { policy: 'close' } })).collect()).length, 1)
  const [close] = await closed.waitFor(1)
  t.match(invalid.messages[0], { policy: 'close', error: { code: 'FST_ERR_CONDUIT_INVALID_DATA' } })
  t.equal(invalid.messages[0].stream, close.stream)
  t.notMatch(invalid.messages[0].error.message, /\b7\b/, 'never the payload')
  t.match(close, { reason: 'invalid', events: 1 })

  t.equal((await (await streamEvents(app, '/invalid', { query: { policy: 'skip' } })).collect()).length, 2)
  t.match((await closed.waitFor(2))[1], { reason: 'end', events: 2 })
  t.match(invalid.messages[1], { policy: 'skip', error: { code: 'FST_ERR_CONDUIT_INVALID_DATA' } })
})

t.test('event:invalid alone is enough to observe streams', async (t) => {
  const invalid = record<InvalidEventMessage>(t, diagnosticsChannels.invalidEvent)
  const { app } = await startApp(t, {}, routes)
  await (await streamEvents(app, '/invalid', { query: { policy: 'skip' } })).collect()
  t.equal(invalid.messages.length, 1)
  t.match(invalid.messages[0], { policy: 'skip', stream: { route: '/invalid' } }, 'observed, since event:invalid has a subscriber')
})

t.test('nobody subscribed: nothing is observed, nothing is published', async (t) => {
  t.equal(observeStream(() => { throw new Error('never called') }), undefined)
  const { app } = await startApp(t, {}, routes)
  t.equal((await (await streamEvents(app, '/chat/x')).collect()).length, 2)
})

t.test('HEAD, and a source that is not one, publish nothing', async (t) => {
  const opened = record<StreamOpenMessage>(t, diagnosticsChannels.streamOpen)
  const closed = record<StreamCloseMessage>(t, diagnosticsChannels.streamClose)
  const { app } = await startApp(t, {}, routes)
  t.equal((await app.inject({ method: 'HEAD', url: '/chat/x' })).statusCode, 200)
  t.equal((await app.inject({ url: '/not-a-source' })).statusCode, 500)
  await (await streamEvents(app, '/chat/x')).collect()
  await closed.waitFor(1)
  t.equal(opened.messages.length, 1, 'only the stream that ran')
  t.equal(closed.messages.length, 1)
  t.equal(closed.messages[0].stream.request.url, '/chat/x')
})

t.test('a channel stream: its name, the broadcast events counted per subscriber, replay:gap', async (t) => {
  const opened = record<StreamOpenMessage>(t, diagnosticsChannels.streamOpen)
  const closed = record<StreamCloseMessage>(t, diagnosticsChannels.streamClose)
  const gaps = record<ReplayGapMessage>(t, diagnosticsChannels.replayGap)
  const name = uniqueName('news')
  const { app, url } = await startApp(t, {}, (app) => {
    const news = app.sse.channel(name)
    app.get('/news', (request, reply) => reply.sse(news))
  })
  const news = app.sse.channel(name)
  await news.publish({ data: 'old' })
  const readers = await Promise.all([FrameReader.open(url + '/news', { 'last-event-id': '1-1' }), FrameReader.open(url + '/news')])
  t.equal(await readers[0].next(), ': gap\n\n')
  await readers[0].next()
  await opened.waitFor(2)
  t.match(opened.messages, [{ stream: { channel: name } }, { stream: { channel: name } }])
  const watcher = news.subscribe()
  await watcher.ready
  await news.publish({ data: 'one' })
  await news.publish({ data: 'two' })
  await take(watcher, 2)
  for (const reader of readers) await reader.waitFor(reader === readers[0] ? 4 : 2)
  for (const reader of readers) reader.close()
  const messages = await closed.waitFor(2)
  t.same(messages.map((message) => message.events).sort(), [2, 3], 'the replayed event and the two broadcast ones')
  t.same(gaps.messages, [{ channel: name, subscriber: 'stream', lastEventId: '1-1' }])
  const late = news.subscribe({ lastEventId: '1-1' })
  await late.ready
  t.same(gaps.messages[1], { channel: name, subscriber: 'iterator', lastEventId: '1-1' })
  await late.return()
  await watcher.return()
})

t.test('subscriber:slow: an iterator, and a stream (which then closes with reason aborted)', async (t) => {
  const slow = record<SlowSubscriberMessage>(t, diagnosticsChannels.slowSubscriber)
  const closed = record<StreamCloseMessage>(t, diagnosticsChannels.streamClose)
  const name = uniqueName('slow')
  const maxBufferedBytes = 64 * 1024
  const { app, port } = await startApp(t, { bus: memoryBus(), maxBufferedBytes }, (app) => {
    const channel = app.sse.channel(name)
    app.get('/slow', (request, reply) => reply.sse(channel))
  })
  const channel = app.sse.channel(name)
  const lazy = channel.subscribe()
  const eager = channel.subscribe()
  await Promise.all([lazy.ready, eager.ready])
  const stalled = new RawSubscriber(port, '/slow')
  t.teardown(() => stalled.close())
  await stalled.head
  stalled.socket.pause()
  const payload = 'x'.repeat(32 * 1024)
  for (let published = 0; slow.messages.length < 2 && published < 5000; published++) {
    await channel.publish({ data: payload })
    await take(eager, 1)
  }
  t.same(slow.messages.map((message) => message.subscriber).sort(), ['iterator', 'stream'])
  t.match(slow.messages, [{ channel: name, maxBufferedBytes }, { channel: name, maxBufferedBytes }])
  stalled.socket.resume()
  const [close] = await closed.waitFor(1)
  t.equal(close.reason, 'aborted')
  await t.rejects(lazy.next(), { code: 'FST_ERR_CONDUIT_SLOW_SUBSCRIBER' })
  await eager.return()
})

t.test('bus:error: a failed publish, a failed subscription (iterator and stream)', async (t) => {
  const errors = record<BusErrorMessage>(t, diagnosticsChannels.busError)
  const bus = new ManualBus()
  const name = uniqueName('broken')
  const { app, url } = await startApp(t, { bus }, (app) => {
    app.get('/broken', (request, reply) => reply.sse(app.sse.channel(name)))
  })
  const failure = new Error('bus down')
  const publish = bus.publish
  bus.publish = async () => { throw failure }
  await t.rejects(app.sse.channel(name).publish({ data: 'x' }), failure)
  bus.publish = publish
  t.same(errors.messages[0], { operation: 'publish', channel: name, error: failure })

  bus.failListen = failure
  await t.rejects(app.sse.channel(name).subscribe().ready, failure)
  t.same(errors.messages[1], { operation: 'subscribe', channel: name, error: failure })
  const reader = await FrameReader.open(url + '/broken')
  t.same((await errors.waitFor(3))[2], { operation: 'subscribe', channel: name, error: failure })
  t.same(await reader.all(), [], 'the stream ends')
})
