import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import t from 'tap'
import { memoryBus } from '../../lib/index.js'
import type { Bus } from '../../lib/index.js'
import { ResumableRecords } from '../../lib/resume/records.js'
import { streamEvents } from '../../lib/testing/index.js'
import type { RecordChannel } from '../../lib/resume/records.js'
import { EventReader, eventually, LogCapture, startApp, uniqueName } from '../support/index.js'

const settings = { format: undefined, ttl: 60_000, maxEvents: 100, maxBytes: 1 << 20, onInvalid: 'close' as const }

/** A memoryBus whose methods the test can break, one by one. */
function breakableBus (): Bus & { broken: Set<string> } {
  const bus = memoryBus()
  const broken = new Set<string>()
  const fail = (name: string): void => { if (broken.has(name)) throw new Error(`${name} failed`) }
  return {
    broken,
    get history () { return bus.history },
    ready: (log) => bus.ready(log),
    publish: async (channel, body, history, json) => {
      fail(body === '' ? 'end' : 'publish')
      return await bus.publish(channel, body, history, json)
    },
    listen: (channel, listener) => bus.listen(channel, listener),
    replay: (channel, afterId, limit) => bus.replay(channel, afterId, limit),
    compare: (a, b) => bus.compare(a, b),
    close: () => bus.close(),
    setState: async (key, state, ttl, create) => {
      fail(`setState:${state}`)
      return await (bus.setState as NonNullable<Bus['setState']>)(key, state, ttl, create)
    },
    getState: async (key) => await (bus.getState as NonNullable<Bus['getState']>)(key),
    expire: async (channel, ttl) => await (bus.expire as NonNullable<Bus['expire']>)(channel, ttl)
  }
}

t.test('HEAD answers the head and starts nothing', async (t) => {
  let starts = 0
  const { app } = await startApp(t, {}, (app) => {
    app.get('/chat', (request, reply) => reply.sse(() => { starts++; return [{ data: 1 }] }, { resume: { key: uniqueName('head') } }))
  })
  const response = await app.inject({ method: 'HEAD', url: '/chat' })
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /^text\/event-stream/)
  t.equal(starts, 0)
})

t.test('HEAD answers the status a GET would: 204 for no record, or one read to its end', async (t) => {
  let starts = 0
  const key = uniqueName('head-status')
  const { app, url } = await startApp(t, {}, (app) => {
    app.get('/start', (request, reply) => reply.sse(() => { starts++; return [{ data: 1 }, { data: 2 }] }, { resume: { key } }))
    app.get('/attach/:key', (request, reply) => reply.sse(app.sse.resumable((request.params as { key: string }).key)))
  })
  const head = async (path: string, lastEventId?: string): Promise<number> =>
    (await app.inject({ method: 'HEAD', url: path, headers: lastEventId === undefined ? {} : { 'last-event-id': lastEventId } })).statusCode
  const get = async (path: string, lastEventId?: string): Promise<number> =>
    (await app.inject({ method: 'GET', url: path, headers: lastEventId === undefined ? {} : { 'last-event-id': lastEventId } })).statusCode

  t.equal(await head('/attach/nope'), 204, 'an unknown key: 204, as its GET')
  t.equal(await get('/attach/nope'), 204)
  t.equal(await head(`/attach/${key}`), 204, 'a key not started yet, on an attach route')
  t.equal(await head('/start'), 200, 'a route that would start it: the stream head')
  t.equal(starts, 0, 'HEAD started nothing')

  const reader = await EventReader.fetch(url + '/start')
  const events = await reader.take(2)
  t.ok(await reader.end(5000), 'the record ended')
  t.equal(starts, 1)
  const last = events.at(-1)?.id as string
  t.equal(await head(`/attach/${key}`), 200, 'a record with something to read')
  t.equal(await head(`/attach/${key}`, last), 204, 'read to its end: 204, as its GET')
  t.equal(await get(`/attach/${key}`, last), 204)
  t.equal(await head('/start', last), 204, 'the same on the route that starts it')
  t.equal(starts, 1, 'nothing started again')
})

t.test('resume options are checked, each named by its path', async (t) => {
  const { app } = await startApp(t, {}, (app) => {
    app.get('/bad', (request, reply) => reply.sse([], { resume: JSON.parse(String((request.query as { r: string }).r)) }))
  })
  const errorOf = async (resume: unknown): Promise<{ code: string, message: string }> =>
    (await app.inject({ url: '/bad', query: { r: JSON.stringify(resume) } })).json()
  t.match(await errorOf({ ttl: 5 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: /option "resume\.key" must be a string of 1 to 512 characters/ })
  t.match(await errorOf({ key: '' }), { message: /option "resume\.key"/ })
  t.match(await errorOf({ key: 'k', ttl: 0 }), { message: /option "resume\.ttl" must be a positive integer of milliseconds/ })
  t.match(await errorOf({ key: 'k', maxEvents: 0 }), { message: /option "resume\.maxEvents"/ })
  t.match(await errorOf('nope'), { message: /option "resume" must be an object with a key/ })
})

t.test('keys and reserved names are refused with coded errors', async (t) => {
  const { app } = await startApp(t)
  t.throws(() => app.sse.resumable(''), { code: 'FST_ERR_CONDUIT_INVALID_RESUME_KEY' })
  t.throws(() => app.sse.resumable('x'.repeat(513)), { code: 'FST_ERR_CONDUIT_INVALID_RESUME_KEY' })
  await t.rejects(app.sse.cancel(5 as unknown as string), { code: 'FST_ERR_CONDUIT_INVALID_RESUME_KEY' })
  t.throws(() => app.sse.channel('@resume:x'), { code: 'FST_ERR_CONDUIT_INVALID_CHANNEL', message: /reserved/ })
  t.equal(await app.sse.cancel('never-started'), false)
  t.equal(await app.sse.resumable('never-started').exists(), false)
  t.equal(app.sse.resumable('k').key, 'k')
})

t.test('a bus without record state refuses resumable streams, coded', async (t) => {
  const inner = memoryBus()
  const bus: Bus = {
    get history () { return inner.history },
    ready: (log) => inner.ready(log),
    publish: (channel, body, history, json) => inner.publish(channel, body, history, json),
    listen: (channel, listener) => inner.listen(channel, listener),
    replay: (channel, afterId) => inner.replay(channel, afterId),
    compare: (a, b) => inner.compare(a, b),
    close: () => inner.close()
  }
  const { app } = await startApp(t, { bus }, (app) => {
    app.get('/start', (request, reply) => reply.sse([{ data: 1 }], { resume: { key: 'k' } }))
    app.get('/attach', (request, reply) => reply.sse(app.sse.resumable('k')))
  })
  t.match((await app.inject('/start')).json(), { statusCode: 500, code: 'FST_ERR_CONDUIT_RESUME_UNSUPPORTED' })
  t.match((await app.inject('/attach')).json(), { code: 'FST_ERR_CONDUIT_RESUME_UNSUPPORTED' })
  await t.rejects(app.sse.cancel('k'), { code: 'FST_ERR_CONDUIT_RESUME_UNSUPPORTED' })
})

t.test('invalid events: skipped (onInvalid: skip) or the record ends there (close); logged', async (t) => {
  const log = new LogCapture()
  const Token = Type.Object({ text: Type.String() })
  const { url } = await startApp(t, {}, (app) => {
    app.get<{ Querystring: { policy: 'skip' | 'close' } }>('/chat', { schema: { sse: { token: Token } } }, (request, reply) =>
      reply.sse([
        { event: 'token', data: { text: 'a' } },
        { event: 'token', data: { text: 5 } },
        { event: 'token', id: 'mine', data: { text: 'b' } },
        { event: 'token', retry: 10, data: { text: 'r' } },
        { event: 'token', data: { text: 'c' } }
      ] as never, { onInvalid: request.query.policy, resume: { key: uniqueName(request.query.policy) } }))
  }, { logger: log.logger })
  const skip = await EventReader.fetch(`${url}/chat?policy=skip`)
  t.ok(await skip.end(5000))
  t.same(skip.events.map((event) => JSON.parse(event.data).text), ['a', 'c'])
  t.equal(log.count('invalid event not recorded; skipped'), 3)
  // The same messages are type errors (see types/reply.tst.ts): the bus assigns ids, a record
  // carries events only.
  t.match(log.lines.filter((line) => line.code === 'FST_ERR_CONDUIT_INVALID_ID'), [{ reason: /resumable stream's record assigns ids itself/ }])
  t.equal(log.lines.filter((line) => line.code === 'FST_ERR_CONDUIT_INVALID_MESSAGE').length, 1, 'retry is refused')
  const close = await EventReader.fetch(`${url}/chat?policy=close`)
  t.ok(await close.end(5000))
  t.same(close.events.map((event) => JSON.parse(event.data).text), ['a'])
  t.equal(log.count('invalid event not recorded; the resumable stream ends'), 1)
})

t.test('not a source: the request fails (coded) and the key is free again', async (t) => {
  const key = uniqueName('notsource')
  const { app } = await startApp(t, {}, (app) => {
    app.get('/bad', (request, reply) => reply.sse(42 as never, { resume: { key } }))
    app.get('/good', (request, reply) => reply.sse([{ data: 'ok' }], { resume: { key } }))
  })
  t.match((await app.inject('/bad')).json(), { code: 'FST_ERR_CONDUIT_INVALID_SOURCE' })
  await new Promise((resolve) => setTimeout(resolve, 5))
  t.match((await app.inject('/good')).body, /data: ok/)
})

t.test('cancel on the instance running the source; a stream attached to an unknown key gets 204', async (t) => {
  const key = uniqueName('local')
  let aborted = false
  const { app, url } = await startApp(t, {}, (app) => {
    app.get('/run', (request, reply) => reply.sse(async function * ({ signal }) {
      yield { data: 'first' }
      await new Promise((resolve) => signal.addEventListener('abort', resolve))
      aborted = true
      yield { data: 'after the abort: not recorded' }
    }, { resume: { key } }))
  })
  const reader = await EventReader.fetch(`${url}/run`)
  t.ok(await reader.received(1, 5000))
  t.equal(await app.sse.cancel(key), true)
  t.ok(await reader.end(5000))
  t.ok(aborted)
  t.same(reader.events.map((event) => event.data), ['first'])
})

t.test('maxBytes bounds a record too; a long record lets the event loop turn', async (t) => {
  const log = new LogCapture()
  const key = uniqueName('bytes')
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 0)
  t.teardown(() => clearInterval(timer))
  const { url } = await startApp(t, {}, (app) => {
    app.get('/many', (request, reply) => reply.sse(function * () {
      for (let i = 0; ; i++) yield { data: 'x'.repeat(10) }
    }, { resume: { key, maxBytes: 16 * 1000 } }))
  }, { logger: log.logger })
  const reader = await EventReader.fetch(`${url}/many`)
  t.ok(await reader.end(10_000))
  const frame = 'data: xxxxxxxxxx\n\n'
  t.equal(reader.events.length, Math.floor(16_000 / frame.length), 'as many whole events as fit in maxBytes')
  t.ok(ticks > 0, 'timers ran while the endless source was recorded')
  t.match((await log.waitFor('resumable record is full')).err, { code: 'FST_ERR_CONDUIT_RECORD_LIMIT' })
})

function directRecords (bus: Bus, log = Fastify().log, lease?: number): ResumableRecords {
  const channels = new Map<string, RecordChannel>()
  return new ResumableRecords({
    bus,
    log,
    ...(lease === undefined ? {} : { lease }),
    channel: (name) => {
      const channel: RecordChannel = {
        append: (body: string, json: string | undefined, history: number) => bus.publish(name, body, history, json),
        close: () => { channels.delete(name) },
        [Symbol.for('fastify-conduit.attach')]: async () => {}
      } as unknown as RecordChannel
      channels.set(name, channel)
      return channel
    }
  })
}

t.test('the lease is renewed while the source runs; a cancel seen at renewal stops it; a failed renewal is logged', async (t) => {
  const bus = breakableBus()
  await bus.ready()
  t.teardown(() => bus.close())
  const log = new LogCapture()
  const records = directRecords(bus, Fastify({ logger: log.logger }).log, 30)
  let aborted = false
  await records.start('lease', async function * ({ signal }: { signal: AbortSignal }) {
    await new Promise((resolve) => signal.addEventListener('abort', resolve))
    aborted = true
  }, settings, Fastify({ logger: log.logger }).log)
  await new Promise((resolve) => setTimeout(resolve, 80))
  t.equal(await (bus.getState as NonNullable<Bus['getState']>)('@resume-state:lease'), 'running', 'renewed past its 30 ms lease')
  bus.broken.add('setState:running')
  t.ok(await eventually(() => log.count('renewing a resumable record failed') > 0, 2000))
  bus.broken.delete('setState:running')
  // A cancel whose message was missed (its bus listener was not ready) is seen at renewal.
  await (bus.setState as NonNullable<Bus['setState']>)('@resume-state:lease', 'cancelled', 1000, false)
  t.ok(await eventually(() => aborted, 2000))
  await records.close()
})

t.test('a failed end is logged; the server closing while a key is claimed starts nothing', async (t) => {
  const bus = breakableBus()
  await bus.ready()
  t.teardown(() => bus.close())
  const log = new LogCapture()
  const records = directRecords(bus, Fastify({ logger: log.logger }).log)
  bus.broken.add('end')
  await records.start('ending', [{ data: 1 }], settings, Fastify({ logger: log.logger }).log)
  t.ok(await eventually(() => log.count('ending a resumable record failed') === 1, 2000))

  let started = false
  const claiming = records.start('late', () => { started = true; return [] }, settings, Fastify().log)
  await records.close()
  await claiming
  t.notOk(started, 'closed while claiming: the source never runs')
  await t.rejects(records.start('after', [], settings, Fastify().log), { code: 'FST_ERR_CONDUIT_CLOSED' })
})

t.test('a source that throws when called: the request fails and the key is free again', async (t) => {
  const key = uniqueName('throws')
  const { app } = await startApp(t, {}, (app) => {
    app.get('/bad', (request, reply) => reply.sse(() => { throw new Error('no model') }, { resume: { key } }))
  })
  t.equal((await app.inject('/bad')).statusCode, 500)
  await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(await app.sse.resumable(key).exists(), false)
})

t.test('an option that is a record names the record (compileOptions, nested paths)', async (t) => {
  const { app } = await startApp(t)
  await t.rejects(async () => await streamEvents(app, '/x', { headers: { 'x-a': 5 as unknown as string } }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: /option "headers" must be an object of header name -> string/ })
})

t.test('memoryBus expire: the history goes, listeners stay and ids go on; setState with create claims once', async (t) => {
  const bus = memoryBus()
  await bus.ready()
  const expire = (bus.expire as NonNullable<Bus['expire']>).bind(bus)
  const setState = (bus.setState as NonNullable<Bus['setState']>).bind(bus)
  const heard: string[] = []
  const listening = bus.listen('room', (id) => heard.push(id))
  const first = await bus.publish('room', 'data: 1\n\n', 10)
  await expire('room', 5)
  await expire('room', 10) // moves the deadline
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.same((await bus.replay('room', first)).entries, [], 'the history is gone')
  const second = await bus.publish('room', 'data: 2\n\n', 10)
  t.ok(bus.compare(second, first) > 0, 'ids go on')
  t.same(heard, [first, second], 'the listener still hears')
  listening.stop()
  await expire('room', 1)
  await bus.publish('quiet', 'data: 1\n\n', 10)
  await expire('quiet', 1)
  await new Promise((resolve) => setTimeout(resolve, 10))
  t.same((await bus.replay('quiet', '0-0')).entries, [])
  await expire('gone', 1) // never published: nothing to drop
  await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(await setState('k', 'a', 1000, true), true)
  t.equal(await setState('k', 'b', 1000, true), false, 'claimed once')
  t.equal(await setState('k', 'c', 1000, false), true, 'set without create')
  await bus.close()
  await t.rejects(setState('k', 'd', 1, false), { code: 'FST_ERR_CONDUIT_CLOSED' })
  await t.rejects(expire('room', 1), { code: 'FST_ERR_CONDUIT_CLOSED' })
})

t.test('a Last-Event-ID that is the end itself (forged) is answered 204 too', async (t) => {
  const bus = memoryBus()
  const key = uniqueName('forged')
  const { url } = await startApp(t, { bus }, (app) => {
    app.get('/chat', (request, reply) => reply.sse([{ data: 'a' }], { resume: { key } }))
  })
  const reader = await EventReader.fetch(`${url}/chat`)
  t.ok(await reader.end(5000))
  const { entries } = await bus.replay(`@resume:${key}`, '0-0')
  const end = entries[entries.length - 1]
  t.equal(end.body, '')
  t.equal((await fetch(`${url}/chat`, { headers: { 'last-event-id': end.id } })).status, 204)
})

t.test('a record that expires between the check that it exists and its replay: the stream ends, then 204 (never a reader waiting for an end that is gone)', async (t) => {
  const inner = memoryBus()
  const key = uniqueName('vanishing')
  // Armed, the record vanishes right after readable() read its state, as if its ttl ran out
  // between that read and the replay: its state is then gone, and its channel empty.
  let armed = false
  let reads = 0
  const bus: Bus = {
    get history () { return inner.history },
    ready: (log) => inner.ready(log),
    publish: (channel, body, history, json) => inner.publish(channel, body, history, json),
    listen: (channel, listener) => inner.listen(channel, listener),
    replay: (channel, afterId, limit) => inner.replay(armed && channel === `@resume:${key}` ? `@resume:${key}-gone` : channel, afterId, limit),
    compare: (a, b) => inner.compare(a, b),
    close: () => inner.close(),
    setState: (stateKey, state, ttl, create) => (inner.setState as NonNullable<Bus['setState']>)(stateKey, state, ttl, create),
    getState: async (stateKey) => armed && stateKey.endsWith(key) && ++reads > 1 ? undefined : await (inner.getState as NonNullable<Bus['getState']>)(stateKey),
    expire: (channel, ttl) => (inner.expire as NonNullable<Bus['expire']>)(channel, ttl)
  }
  const { url } = await startApp(t, { bus }, (app) => {
    app.get('/chat', (request, reply) => reply.sse([{ data: 'a' }, { data: 'b' }], { resume: { key } }))
  })
  const first = await EventReader.fetch(`${url}/chat`)
  t.ok(await first.end(5000))
  t.same(first.messages.map((message) => message.data), ['a', 'b'])
  armed = true
  const after = first.messages[0].id as string
  const late = await EventReader.fetch(`${url}/chat`, { 'last-event-id': after })
  t.ok(await late.end(10_000), 'the stream ended')
  t.same(late.messages, [], 'with nothing')
  t.equal((await fetch(`${url}/chat`, { headers: { 'last-event-id': after } })).status, 204, 'and the record is gone: 204')
})
