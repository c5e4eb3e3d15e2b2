// The client acting on what a fastify-conduit server tells it: a 503 with Retry-After (its
// maxConnections), heartbeats as a liveness check, the `: gap` of a channel, and an auth
// token that expires between connections. Each against a real, listening server.
import type { ServerResponse } from 'node:http'
import { test } from 'tap'
import { Type } from '@sinclair/typebox'
import { connect, type ConduitEvent, type GapInfo, type ReconnectInfo } from '../../lib/client/index.ts'
import { GAP_COMMENT } from '../../lib/client/event-stream.ts'
import { EventStreamParser } from '../../lib/client/parser.ts'
import { GAP_FRAME } from '../../lib/channel/channel.ts'
import { deferred, drain, eventually, openEventStream, startApp, startEventServer, uniqueName } from '../support/index.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// An idle timeout the tests wait out: it must fire on a silent connection, and never on one
// whose bytes are merely late because a loaded machine (several suites on two cores) answers a
// request in hundreds of milliseconds. A second is what a silent connection costs a test.
const IDLE = 1000

test('overload: a 503 from maxConnections is retried after its Retry-After, then the stream opens', async (t) => {
  const release = deferred()
  const seen: Array<{ at: number, lastEventId: string | undefined }> = []
  const { url } = await startApp(t, { maxConnections: 1 }, (app) => {
    app.addHook('onRequest', async (request) => {
      seen.push({ at: Date.now(), lastEventId: request.headers['last-event-id'] as string | undefined })
    })
    app.get('/hold', (request, reply) => reply.sse(async function * () {
      yield { id: 'h', data: 'holding the only slot' }
      await release.promise
    }))
    app.get('/events', (request, reply) => reply.sse([{ id: '7', data: 'in' }]))
  })
  // The only slot is taken until `release`.
  const holder = connect(`${url}/hold`, { reconnect: false })[Symbol.asyncIterator]()
  t.equal((await holder.next()).value?.data, 'holding the only slot')

  const reconnects: ReconnectInfo[] = []
  const stream = connect(`${url}/events`, {
    lastEventId: '6',
    reconnect: { maxDelay: 30_000 },
    onReconnect: (info) => {
      reconnects.push(info)
      // The server has room again before the client comes back.
      if (reconnects.length === 1) release.resolve()
    }
  })
  const events: ConduitEvent[] = []
  // eslint-disable-next-line no-unreachable-loop -- the first event is the point
  for await (const event of stream) {
    events.push(event)
    break
  }
  t.same(events, [{ event: 'message', data: 'in', id: '7' }])
  t.equal(reconnects.length, 1, 'one wait, then the stream opened')
  const [info] = reconnects
  t.equal(info.attempt, 1)
  t.equal((info.error as any)?.code, 'FST_ERR_CONDUIT_CLIENT_STATUS')
  t.equal((info.error as any)?.status, 503)
  t.equal(info.lastEventId, '6')
  // The plugin answers `Retry-After: 5`: the wait is 5 s plus at most half again as jitter.
  t.ok(info.delay >= 5000 && info.delay <= 7500, `waited ${info.delay} ms`)
  const requests = seen.filter((_, i) => i > 0)
  t.equal(requests.length, 2, 'the 503, then the retry')
  t.ok(requests[1].at - requests[0].at >= 5000, 'not retried before Retry-After')
  t.same(requests.map((r) => r.lastEventId), ['6', '6'])
  await holder.return?.()
})

test('Retry-After: an HTTP-date, 429, bounded by maxDelay; without one, or with reconnect: false, the status is final', async (t) => {
  const answers: Array<(res: ServerResponse) => void> = [
    (res) => { res.writeHead(503, { 'retry-after': new Date(Date.now() + 1000).toUTCString() }).end() },
    (res) => { res.writeHead(429, { 'retry-after': '0' }).end() },
    (res) => { res.writeHead(503, { 'retry-after': '3600' }).end() },
    (res) => { openEventStream(res).end('id: 1\ndata: a\n\n') },
    (res) => { res.writeHead(204).end() }
  ]
  const { url, requests } = await startEventServer(t, (res, index) => answers[index](res))
  const reconnects: ReconnectInfo[] = []
  const { events, error } = await drain(connect(url, {
    reconnect: { minDelay: 0, maxDelay: 20 },
    onReconnect: (info) => reconnects.push(info)
  }))
  t.equal(error, undefined)
  t.same(events.map((e) => e.data), ['a'])
  t.equal(requests.length, 5)
  t.same(reconnects.map((r) => (r.error as any)?.status), [503, 429, 503, undefined])
  t.same(reconnects.map((r) => r.attempt), [1, 2, 3, 1], 'a refused attempt is no connection: the count goes on')
  // The date is about a second ahead, the 3600 s an hour: both bounded by maxDelay (20 ms),
  // then jittered up by at most half.
  t.ok(reconnects[0].delay >= 0 && reconnects[0].delay <= 30, `HTTP-date: ${reconnects[0].delay}`)
  t.equal(reconnects[1].delay, 0)
  t.ok(reconnects[2].delay >= 20 && reconnects[2].delay <= 30, `3600 s bounded: ${reconnects[2].delay}`)

  // 204, 401, 403, 404 stay final, and so does a 503 without a valid Retry-After, or any
  // status when reconnect is false.
  const finals: Array<[number, Record<string, string>, boolean]> = [
    [401, { 'retry-after': '0' }, true],
    [403, { 'retry-after': '0' }, true],
    [404, { 'retry-after': '0' }, true],
    [500, { 'retry-after': '0' }, true],
    [503, {}, true],
    [503, { 'retry-after': 'soon' }, true],
    [503, { 'retry-after': '0' }, false]
  ]
  for (const [status, headers, reconnect] of finals) {
    const server = await startEventServer(t, (res) => { res.writeHead(status, headers).end() })
    const stopped = await drain(connect(server.url, reconnect ? {} : { reconnect: false }))
    t.equal(stopped.error?.code, 'FST_ERR_CONDUIT_CLIENT_STATUS', `${status} ${JSON.stringify(headers)} reconnect: ${reconnect}`)
    t.equal(stopped.error?.status, status)
    t.equal(server.requests.length, 1, 'no retry')
  }
  const noContent = await startEventServer(t, (res) => { res.writeHead(204, { 'retry-after': '0' }).end() })
  t.same(await drain(connect(noContent.url)), { events: [] })
  t.equal(noContent.requests.length, 1)
})

test('a server that stops sending bytes: reconnected after idleTimeout, with Last-Event-ID', async (t) => {
  const lastIds: Array<string | undefined> = []
  const { url } = await startApp(t, { heartbeat: false }, (app) => {
    app.get('/events', (request, reply) => {
      const lastEventId = request.headers['last-event-id'] as string | undefined
      lastIds.push(lastEventId)
      if (lastEventId === '2') return reply.code(204).send()
      // First connection: one event, then silence (a half-open connection looks the same).
      if (lastEventId === undefined) {
        return reply.sse(async function * ({ signal }) {
          yield { id: '1', data: 'a' }
          await new Promise((resolve) => signal.addEventListener('abort', resolve))
        })
      }
      return reply.sse([{ id: '2', data: 'b' }])
    })
  })
  const reconnects: ReconnectInfo[] = []
  const { events, error } = await drain(connect(`${url}/events`, {
    idleTimeout: IDLE,
    reconnect: { minDelay: 0, maxDelay: 0 },
    onReconnect: (info) => reconnects.push(info)
  }))
  t.equal(error, undefined)
  t.same(events.map((e) => e.data), ['a', 'b'])
  t.same(lastIds, [undefined, '1', '2'], 'the reconnection resumed after the last event')
  t.equal((reconnects[0].error as any)?.code, 'FST_ERR_CONDUIT_CLIENT_IDLE_TIMEOUT')
  t.equal((reconnects[0].error as any)?.type, 'idle-timeout')
  t.equal((reconnects[0].error as any)?.idleTimeout, IDLE)
  t.equal(reconnects[0].lastEventId, '1')
})

test('idleTimeout: a response head that never comes counts; with reconnect: false the idle connection throws', async (t) => {
  const { url, requests } = await startEventServer(t, (res, index) => {
    // The first request is never answered.
    if (index === 1) openEventStream(res).end('data: a\n\n')
  })
  const reconnects: ReconnectInfo[] = []
  const stream = connect(url, { idleTimeout: IDLE, reconnect: { minDelay: 0, maxDelay: 0 }, onReconnect: (info) => reconnects.push(info) })
  // eslint-disable-next-line no-unreachable-loop -- the first event is the point
  for await (const event of stream) {
    t.equal(event.data, 'a')
    break
  }
  t.equal(requests.length, 2)
  t.equal((reconnects[0].error as any)?.code, 'FST_ERR_CONDUIT_CLIENT_IDLE_TIMEOUT')

  const silent = await startEventServer(t, (res) => { openEventStream(res).write('data: a\n\n') })
  const { events, error } = await drain(connect(silent.url, { idleTimeout: IDLE, reconnect: false }))
  t.same(events.map((e) => e.data), ['a'])
  t.equal(error?.code, 'FST_ERR_CONDUIT_CLIENT_NETWORK')
  t.equal(error?.cause?.code, 'FST_ERR_CONDUIT_CLIENT_IDLE_TIMEOUT')
})

test('idleTimeout: heartbeats keep a quiet stream alive; a consumer busy longer than it is no dead connection', async (t) => {
  const next = deferred()
  const { url } = await startApp(t, { heartbeat: 50 }, (app) => {
    app.get('/quiet', (request, reply) => reply.sse(async function * () {
      yield { data: 'a' }
      // Quiet for two idle timeouts: only heartbeats (at most 62.5 ms apart) flow.
      await sleep(2 * IDLE)
      yield { data: 'b' }
    }))
    app.get('/busy', (request, reply) => reply.sse(async function * () {
      yield { data: 'a' }
      await next.promise
      yield { data: 'b' }
    }, { heartbeat: false }))
  })
  const quiet = await drain(connect(`${url}/quiet`, { idleTimeout: IDLE, reconnect: false }))
  t.equal(quiet.error, undefined)
  t.same(quiet.events.map((e) => e.data), ['a', 'b'])

  const busy: string[] = []
  for await (const event of connect(`${url}/busy`, { idleTimeout: IDLE, reconnect: false })) {
    busy.push(event.data)
    if (event.data === 'a') {
      // Nothing is read while the consumer works: the idle timer fires and lets it be.
      await sleep(2 * IDLE)
      next.resolve()
    }
  }
  t.same(busy, ['a', 'b'])
})

test('idleTimeout: bytes that arrived while the process was stalled are read before the connection is judged idle', async (t) => {
  let send = (): void => {}
  const { url } = await startEventServer(t, (res) => {
    openEventStream(res).write('data: a\n\n')
    send = () => { res.end('data: b\n\n') }
  })
  const events: string[] = []
  let error: unknown
  try {
    for await (const event of connect(url, { idleTimeout: 100, reconnect: false })) {
      events.push(event.data)
      if (event.data !== 'a') continue
      // The last event reaches the client's socket, then the process stalls past idleTimeout
      // (as in a long GC pause) before it could read it: the idle timer is due first.
      setTimeout(() => {
        send()
        const until = Date.now() + 300
        while (Date.now() < until);
      }, 10)
    }
  } catch (err) {
    error = err
  }
  t.equal(error, undefined, 'not idle: its bytes were there')
  t.same(events, ['a', 'b'])
})

test('idleTimeout: false never times out', async (t) => {
  const { url } = await startEventServer(t, (res) => {
    openEventStream(res).write('data: a\n\n')
    setTimeout(() => res.end('data: b\n\n'), 300)
  })
  const { events, error } = await drain(connect(url, { idleTimeout: false, reconnect: false }))
  t.equal(error, undefined)
  t.same(events.map((e) => e.data), ['a', 'b'])
})

test('gap: a channel whose history no longer holds the Last-Event-ID calls onGap before the replay', async (t) => {
  const name = uniqueName('gap')
  const Headline = Type.Object({ title: Type.String() })
  let channel: any
  const { url } = await startApp(t, {}, (app) => {
    channel = app.sse.channel(name, { schema: { headline: Headline }, history: 2 })
    app.get('/news', (request, reply) => reply.sse(channel))
  })
  const ids: string[] = []
  for (let n = 1; n <= 4; n++) ids.push(await channel.publish({ event: 'headline', data: { title: `t${n}` } }))

  const log: string[] = []
  const gaps: GapInfo[] = []
  const resume = async (lastEventId: string): Promise<void> => {
    const stream = connect(`${url}/news`, {
      lastEventId,
      events: { headline: Headline },
      onGap: (info) => {
        gaps.push(info)
        log.push('gap')
      }
    })
    for await (const ev of stream) {
      log.push(ev.data.title)
      if (ev.id === ids[3]) break
    }
  }
  // Retained: 3 and 4. After 1, event 2 is lost.
  await resume(ids[0])
  t.same(log, ['gap', 't3', 't4'], 'the gap comes before the oldest events the server still holds')
  t.same(gaps, [{ lastEventId: ids[0] }])
  // After 2, nothing is lost: no gap.
  log.length = 0
  await resume(ids[1])
  t.same(log, ['t3', 't4'])
  t.equal(gaps.length, 1)
})

test('gap: the server\'s frame is the client\'s comment; the call falls where the comment is among events', async (t) => {
  const comments: string[] = []
  new EventStreamParser('', { onComment: (comment) => comments.push(comment) }).feed(new TextEncoder().encode(GAP_FRAME))
  t.same(comments, [GAP_COMMENT])

  const { url } = await startEventServer(t, (res) => {
    openEventStream(res).end('id: 1\ndata: a\n\n: gap\n\n: gaps\n:gap\ndata: b\n\n: gap\n\n')
  })
  const log: string[] = []
  for await (const ev of connect(url, { reconnect: false, onGap: ({ lastEventId }) => log.push(`gap after ${lastEventId}`) })) {
    log.push(ev.data)
  }
  t.same(log, ['a', 'gap after 1', 'gap after 1', 'b', 'gap after 1'], 'other comments are not gaps')

  const thrown = await drain(connect(url, { reconnect: false, onGap: () => { throw new Error('refetch failed') } }))
  t.same(thrown.events.map((e) => e.data), ['a'])
  t.equal(thrown.error?.message, 'refetch failed', 'an error thrown by onGap ends the iteration')
})

test('maxEventSize: a larger event from the server fails the stream with a coded error; smaller ones pass', async (t) => {
  const { url } = await startApp(t, {}, (app) => {
    app.get('/big', (request, reply) => reply.sse([
      { id: '1', data: 'x'.repeat(1000) },
      { id: '2', data: 'y'.repeat(200_000) },
      { id: '3', data: 'z' }
    ]))
    app.get('/huge', (request, reply) => reply.sse([{ data: 'h'.repeat(5 * 1024 * 1024) }]))
    // Written in one batch: both events reach the client in the same chunk.
    app.get('/pair', (request, reply) => reply.sse([{ id: '1', data: 'a'.repeat(100) }, { id: '2', data: 'b'.repeat(20_000) }]))
  })
  const pair = connect(`${url}/pair`, { maxEventSize: 5000, reconnect: false })
  const paired = await drain(pair)
  t.same(paired.events.map((e) => e.id), ['1'], 'the event before the oversized one in the same chunk is yielded first')
  t.equal(paired.error?.code, 'FST_ERR_CONDUIT_CLIENT_EVENT_TOO_LARGE')
  t.equal(pair.lastEventId, '1')

  const stream = connect(`${url}/big`, { maxEventSize: 100_000 })
  const { events, error } = await drain(stream)
  t.same(events.map((e) => e.id), ['1'])
  t.equal(error?.code, 'FST_ERR_CONDUIT_CLIENT_EVENT_TOO_LARGE')
  t.equal(error?.type, 'event-too-large')
  t.equal(error?.maxEventSize, 100_000)
  t.notMatch(error?.message, /yyy/)
  t.equal(stream.lastEventId, '1', 'resumable after the last event yielded')

  const fits = await drain(connect(`${url}/big`, { maxEventSize: 300_000, reconnect: false }))
  t.same(fits.events.map((e) => e.id), ['1', '2', '3'])

  const byDefault = await drain(connect(`${url}/huge`))
  t.equal(byDefault.error?.code, 'FST_ERR_CONDUIT_CLIENT_EVENT_TOO_LARGE')
  t.equal(byDefault.error?.maxEventSize, 4 * 1024 * 1024, 'the default is 4 MiB')
})

test('maxEventSize: a line that never ends stops at the limit, and the connection is closed', async (t) => {
  let closed = false
  const { url } = await startEventServer(t, (res) => {
    openEventStream(res)
    res.on('close', () => { closed = true })
    const chunk = 'data: ' + 'x'.repeat(16 * 1024)
    const pump = (): void => {
      // Writes until the client goes away: without a limit it would never stop.
      if (closed) return
      while (res.write(chunk));
      res.once('drain', pump)
    }
    pump()
  })
  const { error } = await drain(connect(url, { maxEventSize: 256 * 1024 }))
  t.equal(error?.code, 'FST_ERR_CONDUIT_CLIENT_EVENT_TOO_LARGE')
  t.ok(await eventually(() => closed, 5000), 'the request was aborted')
})

test('headers as a function: called for every attempt, so a reconnection carries a fresh token', async (t) => {
  // Tokens expire after one connection: the server accepts each once.
  const used = new Set<string>()
  const seen: Array<string | undefined> = []
  const { url } = await startApp(t, { retry: 0 }, (app) => {
    app.get('/events', (request, reply) => {
      const token = request.headers.authorization
      seen.push(token)
      if (token === undefined || used.has(token)) return reply.code(401).send()
      used.add(token)
      const lastEventId = Number(request.headers['last-event-id'] ?? 0)
      if (lastEventId === 3) return reply.code(204).send()
      return reply.sse([{ id: String(lastEventId + 1), data: token }])
    })
  })
  let issued = 0
  const { events, error } = await drain(connect(`${url}/events`, {
    // An async refresh, as a token endpoint would be.
    headers: async () => {
      await sleep(1)
      return { authorization: `Bearer ${++issued}` }
    }
  }))
  t.equal(error, undefined)
  t.same(events.map((e) => e.data), ['Bearer 1', 'Bearer 2', 'Bearer 3'])
  t.same(seen, ['Bearer 1', 'Bearer 2', 'Bearer 3', 'Bearer 4'])

  // Sync too, with the defaults kept unless overridden, and a Headers object accepted.
  const plain = await startEventServer(t, (res) => { res.writeHead(204).end() })
  await drain(connect(plain.url, { headers: () => new Headers({ 'x-n': '1' }) }))
  t.equal(plain.requests[0].headers['x-n'], '1')
  t.equal(plain.requests[0].headers.accept, 'text/event-stream')
  t.equal(plain.requests[0].headers['cache-control'], 'no-cache')
})

test('headers as a function: its error ends the iteration; invalid headers are a ClientOptionError; an abort while it runs ends cleanly', async (t) => {
  const { url, requests } = await startEventServer(t, (res) => { res.writeHead(204).end() })
  const failed = await drain(connect(url, { headers: async () => { throw new Error('token endpoint down') } }))
  t.equal(failed.error?.message, 'token endpoint down')

  const invalid = await drain(connect(url, { headers: () => ({ 'bad name': 'x' }) }))
  t.equal(invalid.error?.code, 'FST_ERR_CONDUIT_CLIENT_INVALID_OPTION')
  t.equal(invalid.error?.option, 'headers')

  const controller = new AbortController()
  const aborted = await drain(connect(url, {
    signal: controller.signal,
    headers: () => {
      controller.abort()
      return {}
    }
  }))
  t.same(aborted, { events: [] })
  t.equal(requests.length, 0, 'nothing was requested')
})
