import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import { test } from 'tap'
import { Type } from '@sinclair/typebox'
import { connect, type ConduitEvent, type ReconnectInfo } from '../../lib/client/index.ts'
import { drain, openEventStream, startEventServer } from '../support/index.js'

test('reads events; sends Accept and Cache-Control; no Last-Event-ID at first', async (t) => {
  const { url, requests } = await startEventServer(t, (res) => {
    openEventStream(res).end('event: token\nid: 1\ndata: a\ndata: b\n\n: comment\ndata: c\n\n')
  })
  const stream = connect(url, { reconnect: false })
  t.equal(requests.length, 0, 'nothing is requested before iteration')
  const { events, error } = await drain(stream)
  t.equal(error, undefined)
  t.same(events, [
    { event: 'token', data: 'a\nb', id: '1' },
    { event: 'message', data: 'c', id: '1' }
  ])
  t.equal(stream.lastEventId, '1')
  t.equal(requests.length, 1)
  t.equal(requests[0].method, 'GET')
  t.equal(requests[0].headers.accept, 'text/event-stream')
  t.equal(requests[0].headers['cache-control'], 'no-cache')
  t.notOk('last-event-id' in requests[0].headers)
})

test('reconnects after the server destroys the socket mid-stream, resuming with Last-Event-ID', async (t) => {
  let first: ServerResponse | undefined
  const { url, requests } = await startEventServer(t, (res, index) => {
    if (index === 0) {
      // The incomplete second frame is lost with the connection.
      first = openEventStream(res)
      res.write('retry: 1\nid: 1\ndata: a\n\nid: 2\ndata: partial')
    } else if (index === 1) {
      openEventStream(res).end('id: 2\ndata: b\n\nid: 3\n\n')
    } else {
      res.writeHead(204).end()
    }
  })
  const reconnects: ReconnectInfo[] = []
  const events: ConduitEvent[] = []
  const stream = connect(url, { onReconnect: (info) => reconnects.push(info) })
  for await (const event of stream) {
    events.push(event)
    if (event.data === 'a') first?.socket?.destroy()
  }
  t.same(events, [
    { event: 'message', data: 'a', id: '1', retry: 1 },
    { event: 'message', data: 'b', id: '2' }
  ])
  t.same(requests.map((r) => r.headers['last-event-id']), [undefined, '1', '3'],
    'an id-only frame moves Last-Event-ID too')
  t.equal(stream.lastEventId, '3')
  t.equal(reconnects.length, 2)
  t.match(reconnects[0], { attempt: 1, lastEventId: '1' })
  t.ok(reconnects[0].delay >= 0.5 && reconnects[0].delay <= 1.5, 'the server\'s retry is honoured, with jitter')
  t.type(reconnects[0].error, Error, 'a drop carries the read error')
  t.match(reconnects[1], { attempt: 1, lastEventId: '3' }, 'a connection that opened restarts the count')
  t.ok(reconnects[1].delay >= 0.5 && reconnects[1].delay <= 1.5)
  t.notOk('error' in reconnects[1], 'the server ending the response is no error')
})

test('without retry from the server: exponential backoff with jitter between minDelay and maxDelay', async (t) => {
  const { url } = await startEventServer(t, (res, index) => {
    if (index === 0) openEventStream(res).end('data: a\n\n')
    else res.writeHead(204).end()
  })
  let calls = 0
  const reconnects: ReconnectInfo[] = []
  const { events, error } = await drain(connect(url, {
    reconnect: { minDelay: 1, maxDelay: 3 },
    onReconnect: (info) => reconnects.push(info),
    // The first three attempts fail as an unreachable server would.
    fetch: async (input, init) => {
      if (calls++ < 3) throw new TypeError('fetch failed')
      return await fetch(input, init)
    }
  }))
  t.equal(error, undefined)
  t.same(events.map((e) => e.data), ['a'])
  t.same(reconnects.map((r) => r.attempt), [1, 2, 3, 1])
  for (const { attempt, delay } of reconnects) {
    t.ok(delay >= 1 && delay <= Math.min(3, 2 ** attempt), `attempt ${attempt}: ${delay} ms`)
  }
  t.same(reconnects.map((r) => (r.error as Error | undefined)?.message), ['fetch failed', 'fetch failed', 'fetch failed', undefined])
})

test('lastEventId option: sent from the first request, UTF-8 encoded', async (t) => {
  const { url, requests } = await startEventServer(t, (res, index) => {
    if (index === 0) openEventStream(res).end('data: a\n\nid: ü-😀\ndata: b\n\n')
    else res.writeHead(204).end()
  })
  const stream = connect(url, { lastEventId: 'é-中', reconnect: { minDelay: 0, maxDelay: 0 } })
  const { events } = await drain(stream)
  t.same(events, [
    { event: 'message', data: 'a', id: 'é-中' },
    { event: 'message', data: 'b', id: 'ü-😀' }
  ])
  // Node reads header bytes as Latin-1; the bytes are the id's UTF-8.
  const sent = requests.map((r) => Buffer.from(r.headers['last-event-id'] as string, 'latin1').toString('utf8'))
  t.same(sent, ['é-中', 'ü-😀'])
})

test('ASCII ids go out as they are', async (t) => {
  const { url, requests } = await startEventServer(t, (res) => { res.writeHead(204).end() })
  await drain(connect(url, { lastEventId: 'abc-1' }))
  t.equal(requests[0].headers['last-event-id'], 'abc-1')
})

test('204 at once: no events, no reconnection', async (t) => {
  const { url, requests } = await startEventServer(t, (res) => { res.writeHead(204).end() })
  const reconnects: ReconnectInfo[] = []
  const { events, error } = await drain(connect(url, { onReconnect: (info) => reconnects.push(info) }))
  t.same(events, [])
  t.equal(error, undefined)
  t.equal(requests.length, 1)
  t.same(reconnects, [])
})

test('a status other than 200 throws ClientStatusError and does not reconnect', async (t) => {
  for (const status of [500, 201, 404]) {
    const { url, requests } = await startEventServer(t, (res) => { res.writeHead(status, { 'content-type': 'text/event-stream' }).end('data: a\n\n') })
    const { events, error } = await drain(connect(url))
    t.same(events, [])
    t.equal(error?.code, 'FST_ERR_CONDUIT_CLIENT_STATUS', `status ${status}`)
    t.equal(error?.type, 'status')
    t.equal(error?.status, status)
    t.equal(requests.length, 1)
  }
})

test('a Content-Type other than text/event-stream throws ClientContentTypeError', async (t) => {
  const wrong = await startEventServer(t, (res) => { openEventStream(res, 'application/json').end('{}') })
  const bad = await drain(connect(wrong.url))
  t.equal(bad.error?.code, 'FST_ERR_CONDUIT_CLIENT_CONTENT_TYPE')
  t.equal(bad.error?.type, 'content-type')
  t.equal(bad.error?.contentType, 'application/json')
  t.equal(wrong.requests.length, 1)

  const none = await startEventServer(t, (res) => { res.writeHead(200).end('data: a\n\n') })
  const missing = await drain(connect(none.url))
  t.equal(missing.error?.code, 'FST_ERR_CONDUIT_CLIENT_CONTENT_TYPE')
  t.equal(missing.error?.contentType, '')

  // Parameters and case do not matter: the MIME type essence does.
  const fine = await startEventServer(t, (res) => { openEventStream(res, 'Text/Event-Stream ; charset=utf-8').end('data: a\n\n') })
  const ok = await drain(connect(fine.url, { reconnect: false }))
  t.same(ok, { events: [{ event: 'message', data: 'a', id: '' }] })
})

test('abort while reading ends the iteration cleanly and closes the connection', async (t) => {
  let closed: Promise<unknown> | undefined
  const { url, requests } = await startEventServer(t, (res) => {
    closed = once(openEventStream(res), 'close')
    res.write('data: a\n\n')
  })
  const controller = new AbortController()
  const events: ConduitEvent[] = []
  for await (const event of connect(url, { signal: controller.signal })) {
    events.push(event)
    controller.abort()
  }
  t.same(events.map((e) => e.data), ['a'])
  await closed
  t.equal(requests.length, 1)
})

test('abort while waiting to reconnect ends the iteration at once', async (t) => {
  const { url, requests } = await startEventServer(t, (res) => { openEventStream(res).end('data: a\n\n') })
  const controller = new AbortController()
  const { events, error } = await drain(connect(url, {
    signal: controller.signal,
    reconnect: { minDelay: 60_000, maxDelay: 60_000 },
    onReconnect: () => { setImmediate(() => { controller.abort() }) }
  }))
  t.equal(error, undefined)
  t.same(events.map((e) => e.data), ['a'])
  t.equal(requests.length, 1)

  // Aborted by onReconnect itself: the wait does not start.
  const again = new AbortController()
  const second = await drain(connect(url, {
    signal: again.signal,
    reconnect: { minDelay: 60_000, maxDelay: 60_000 },
    onReconnect: () => { again.abort() }
  }))
  t.equal(second.error, undefined)
  t.equal(requests.length, 2)
})

test('abort while the request is pending ends cleanly', async (t) => {
  const controller = new AbortController()
  const { url } = await startEventServer(t, () => { controller.abort() })
  const { events, error } = await drain(connect(url, { signal: controller.signal }))
  t.same(events, [])
  t.equal(error, undefined)
})

test('an aborted signal: nothing is requested', async (t) => {
  const { url, requests } = await startEventServer(t, (res) => { res.writeHead(204).end() })
  const { events } = await drain(connect(url, { signal: AbortSignal.abort() }))
  t.same(events, [])
  t.equal(requests.length, 0)
})

test('breaking out of for await aborts the request; iterating again resumes after the last event', async (t) => {
  let closed: Promise<unknown> | undefined
  const { url, requests } = await startEventServer(t, (res, index) => {
    if (index === 0) {
      closed = once(openEventStream(res), 'close')
      res.write('id: 1\ndata: a\n\nid: 2\ndata: b\n\n')
    } else {
      openEventStream(res).end('id: 3\ndata: c\n\n')
    }
  })
  const stream = connect(url, { reconnect: false })
  // eslint-disable-next-line no-unreachable-loop -- leaving after one event is the point
  for await (const event of stream) {
    t.equal(event.data, 'a')
    break
  }
  await closed
  t.equal(stream.lastEventId, '1', 'the event the consumer saw, not the next one already parsed')
  const { events } = await drain(stream)
  t.same(events.map((e) => e.data), ['c'])
  t.same(requests.map((r) => r.headers['last-event-id']), [undefined, '1'])
})

test('reconnect: false — a clean end ends the iteration, a drop throws ClientNetworkError', async (t) => {
  let dropped: ServerResponse | undefined
  const { url } = await startEventServer(t, (res, index) => {
    if (index === 0) openEventStream(res).end('data: a\n\n')
    else {
      dropped = openEventStream(res)
      res.write('data: b\n\n')
    }
  })
  t.same(await drain(connect(url, { reconnect: false })), { events: [{ event: 'message', data: 'a', id: '' }] })

  const events: string[] = []
  let error: any
  try {
    for await (const event of connect(url, { reconnect: false })) {
      events.push(event.data)
      dropped?.socket?.destroy()
    }
  } catch (err) {
    error = err
  }
  t.same(events, ['b'])
  t.equal(error?.code, 'FST_ERR_CONDUIT_CLIENT_NETWORK')
  t.equal(error?.type, 'network')
  t.type(error?.cause, Error)

  const refused = await drain(connect(url, {
    reconnect: false,
    fetch: async () => { throw new TypeError('fetch failed') }
  }))
  t.equal(refused.error?.code, 'FST_ERR_CONDUIT_CLIENT_NETWORK')
  t.equal(refused.error?.cause?.message, 'fetch failed')
})

test('method, body and headers, sent again on every reconnection', async (t) => {
  const { url, requests } = await startEventServer(t, (res, index) => {
    if (index < 2) openEventStream(res).end(`data: ${index}\n\n`)
    else res.writeHead(204).end()
  })
  const { events } = await drain(connect(url, {
    body: JSON.stringify({ prompt: 'hi' }),
    headers: { 'content-type': 'application/json', authorization: 'Bearer t', accept: 'text/event-stream, */*' },
    reconnect: { minDelay: 0, maxDelay: 0 }
  }))
  t.same(events.map((e) => e.data), ['0', '1'])
  t.equal(requests.length, 3)
  for (const request of requests) {
    t.equal(request.method, 'POST', 'POST is the default with a body')
    t.equal(request.body, '{"prompt":"hi"}')
    t.equal(request.headers.authorization, 'Bearer t')
    t.equal(request.headers.accept, 'text/event-stream, */*', 'a header given replaces the default')
    t.equal(request.headers['cache-control'], 'no-cache')
  }

  const put = await startEventServer(t, (res) => { res.writeHead(204).end() })
  await drain(connect(put.url, { method: 'PUT', body: 'x', headers: [['x-a', '1']] }))
  t.equal(put.requests[0].method, 'PUT')
  t.equal(put.requests[0].headers['x-a'], '1')
})

const Token = Type.Object({ text: Type.String() })
const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })

test('events: data parsed as JSON and checked against its schema', async (t) => {
  const { url } = await startEventServer(t, (res) => {
    openEventStream(res).end(
      'event: token\nid: 1\ndata: {"text":"Hel"}\n\n' +
      'event: token\ndata: {"text":"lo"}\n\n' +
      'event: ping\ndata: \n\n' +
      'data: 42\n\n' +
      'event: done\ndata: {"reason":"stop"}\n\n'
    )
  })
  const stream = connect(url, {
    events: { token: Token, done: Done, ping: Type.Undefined(), message: Type.Number() },
    reconnect: false
  })
  const texts: string[] = []
  const seen: unknown[] = []
  for await (const ev of stream) {
    seen.push(ev)
    if (ev.event === 'token') texts.push(ev.data.text)
  }
  t.same(texts, ['Hel', 'lo'])
  t.same(seen, [
    { event: 'token', data: { text: 'Hel' }, id: '1' },
    { event: 'token', data: { text: 'lo' }, id: '1' },
    { event: 'ping', data: undefined, id: '1' },
    { event: 'message', data: 42, id: '1' },
    { event: 'done', data: { reason: 'stop' }, id: '1' }
  ])
})

test('events: a schema-invalid event throws ClientInvalidDataError, without the payload', async (t) => {
  let closed: Promise<unknown> | undefined
  const { url } = await startEventServer(t, (res) => {
    closed = once(openEventStream(res), 'close')
    res.write('event: token\nid: 1\ndata: {"text":"ok"}\n\nevent: token\nid: 2\ndata: {"text":12345}\n\n')
  })
  const stream = connect(url, { events: { token: Token } })
  const { events, error } = await drain(stream)
  t.same(events.map((e) => e.data), [{ text: 'ok' }])
  t.equal(error?.code, 'FST_ERR_CONDUIT_CLIENT_INVALID_DATA')
  t.equal(error?.type, 'invalid-data')
  t.equal(error?.event, 'token')
  t.equal(error?.path, '/text')
  t.equal(error?.reason, 'Expected string')
  t.notMatch(error?.message, /12345/)
  t.equal(stream.lastEventId, '1', 'the invalid event is not counted as seen')
  await closed
})

test('events: data that is not JSON, and an undeclared event name', async (t) => {
  const { url } = await startEventServer(t, (res, index) => {
    if (index === 0) openEventStream(res).end('event: token\ndata: {"text": secret-value\n\n')
    else openEventStream(res).end('event: surprise\ndata: {}\n\n')
  })
  const notJson = await drain(connect(url, { events: { token: Token } }))
  t.equal(notJson.error?.code, 'FST_ERR_CONDUIT_CLIENT_INVALID_DATA')
  t.equal(notJson.error?.path, '')
  t.notMatch(notJson.error?.message, /secret/)

  const undeclared = await drain(connect(url, { events: { token: Token } }))
  t.equal(undeclared.error?.code, 'FST_ERR_CONDUIT_CLIENT_UNDECLARED_EVENT')
  t.equal(undeclared.error?.type, 'undeclared-event')
  t.equal(undeclared.error?.event, 'surprise')
})

test('a custom fetch is used; a 200 without a body reads as an empty stream', async (t) => {
  const calls: Array<{ url: string, init: RequestInit, self: unknown }> = []
  const { events, error } = await drain(connect(new URL('http://example.test/a/../events?x=1'), {
    reconnect: false,
    fetch: async function (this: unknown, url, init) {
      calls.push({ url, init, self: this })
      return new Response(null, { status: 200, headers: { 'content-type': 'text/event-stream' } })
    }
  }))
  t.same(events, [])
  t.equal(error, undefined)
  t.equal(calls.length, 1)
  t.equal(calls[0].url, 'http://example.test/events?x=1')
  t.equal(calls[0].init.method, 'GET')
  t.type(calls[0].init.signal, AbortSignal)
  // A browser's fetch throws "Illegal invocation" when called as a method of another object.
  t.equal(calls[0].self, undefined, 'fetch is called as a plain function')
})

test('an error thrown by onReconnect ends the iteration', async (t) => {
  const { url } = await startEventServer(t, (res) => { openEventStream(res).end('data: a\n\n') })
  const { events, error } = await drain(connect(url, { onReconnect: () => { throw new Error('stop here') } }))
  t.same(events.map((e) => e.data), ['a'])
  t.equal(error?.message, 'stop here')
})
