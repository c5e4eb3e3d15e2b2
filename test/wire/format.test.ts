import t from 'tap'
import { formatEvent, SSEEvent, SSEStream } from '../../lib/index.js'
import type { SSEMessage } from '../../lib/index.js'
import * as wire from '../../lib/wire/index.js'

// Frames are compared whole: the exact bytes a client receives.

t.test('data', async (t) => {
  t.equal(formatEvent({ data: 'hi' }), 'data: hi\n\n', 'a string is written verbatim')
  t.equal(formatEvent({ data: '' }), 'data: \n\n', 'empty data still writes a data line, so it dispatches')
  t.equal(formatEvent({ data: ' lead' }), 'data:  lead\n\n', 'a leading space survives: the parser strips exactly one')
  t.equal(formatEvent({ data: { a: 1, b: [true, null] } }), 'data: {"a":1,"b":[true,null]}\n\n', 'an object is JSON')
  t.equal(formatEvent({ data: 0 }), 'data: 0\n\n', 'zero is data, not absence')
  t.equal(formatEvent({ data: null }), 'data: null\n\n')
  t.equal(formatEvent({ data: false }), 'data: false\n\n')
  t.equal(formatEvent({ data: { s: 'a\nb\rc' } }), 'data: {"s":"a\\nb\\rc"}\n\n', 'JSON escapes line breaks: one line')
})

t.test('data is split on CRLF, LF and lone CR', async (t) => {
  t.equal(formatEvent({ data: 'a\nb' }), 'data: a\ndata: b\n\n')
  t.equal(formatEvent({ data: 'a\rb' }), 'data: a\ndata: b\n\n')
  t.equal(formatEvent({ data: 'a\r\nb' }), 'data: a\ndata: b\n\n')
  t.equal(formatEvent({ data: 'a\n\rb' }), 'data: a\ndata: \ndata: b\n\n', 'LF then CR is two breaks')
  t.equal(formatEvent({ data: '\n' }), 'data: \ndata: \n\n')
  t.equal(formatEvent({ data: 'x\r\n\r\ny' }), 'data: x\ndata: \ndata: y\n\n')
  t.equal(formatEvent({ data: 'end\n' }), 'data: end\ndata: \n\n', 'a trailing break keeps its empty line')
})

t.test('no payload can forge a field or a second event', async (t) => {
  const frame = formatEvent({ data: 'x\n\nid: forged\r\nevent: evil\rretry: 1' })
  t.equal(frame, 'data: x\ndata: \ndata: id: forged\ndata: event: evil\ndata: retry: 1\n\n')
  t.equal(frame.split('\n\n').length, 2, 'exactly one blank line: one event')
})

t.test('event', async (t) => {
  t.equal(formatEvent({ event: 'tick', data: '1' }), 'event: tick\ndata: 1\n\n')
  t.equal(formatEvent({ event: 'done' }), 'event: done\ndata: \n\n', 'an event without data still dispatches')
  t.equal(formatEvent({ event: 'done', data: '' }), 'event: done\ndata: \n\n')
  for (const bad of ['a\nb', 'a\rb', 'a\r\nb', '\n']) {
    t.throws(() => formatEvent({ event: bad, data: 'x' }), { code: 'FST_ERR_CONDUIT_INVALID_EVENT_NAME' }, JSON.stringify(bad))
  }
  t.throws(() => formatEvent({ event: 5 as unknown as string, data: 'x' }), { code: 'FST_ERR_CONDUIT_INVALID_EVENT_NAME' })
})

t.test('id', async (t) => {
  t.equal(formatEvent({ id: '42', data: 'x' }), 'id: 42\ndata: x\n\n')
  t.equal(formatEvent({ id: 0, data: 'x' }), 'id: 0\ndata: x\n\n', 'id 0 is written, not dropped')
  t.equal(formatEvent({ id: '', data: 'x' }), 'id: \ndata: x\n\n', 'an empty id resets Last-Event-ID')
  t.equal(formatEvent({ id: 7 }), 'id: 7\n\n', 'an id alone moves Last-Event-ID without a data line')
  for (const bad of ['a\nb', 'a\rb', 'a\0b']) {
    t.throws(() => formatEvent({ id: bad, data: 'x' }), { code: 'FST_ERR_CONDUIT_INVALID_ID' }, JSON.stringify(bad))
  }
  for (const bad of [NaN, Infinity, -Infinity, {}, true]) {
    t.throws(() => formatEvent({ id: bad as never, data: 'x' }), { code: 'FST_ERR_CONDUIT_INVALID_ID' }, String(bad))
  }
})

t.test('retry', async (t) => {
  t.equal(formatEvent({ retry: 3000 }), 'retry: 3000\n\n')
  t.equal(formatEvent({ retry: 0, data: 'x' }), 'retry: 0\ndata: x\n\n')
  for (const bad of [-1, 1.5, NaN, Infinity, Number.MAX_SAFE_INTEGER + 1, '100']) {
    t.throws(() => formatEvent({ retry: bad as number }), { code: 'FST_ERR_CONDUIT_INVALID_RETRY' }, String(bad))
  }
})

t.test('comment', async (t) => {
  t.equal(formatEvent({ comment: 'hello' }), ': hello\n\n')
  t.equal(formatEvent({ comment: '' }), ': \n\n')
  t.equal(formatEvent({ comment: 'a\nb\rc\r\nd' }), ': a\n: b\n: c\n: d\n\n', 'split like data: it cannot escape')
  t.equal(formatEvent({ comment: 'c', event: 'e', id: 1, retry: 2, data: 'd' }), ': c\nevent: e\nid: 1\nretry: 2\ndata: d\n\n')
  t.throws(() => formatEvent({ comment: 1 as unknown as string }), { code: 'FST_ERR_CONDUIT_INVALID_COMMENT' })
})

t.test('a message with a bad field is rejected whole', async (t) => {
  t.throws(() => formatEvent({ data: 'fine', id: 'bad\n' }), { code: 'FST_ERR_CONDUIT_INVALID_ID' })
  t.throws(() => formatEvent({ data: 'fine', event: 'ok', retry: -5 }), { code: 'FST_ERR_CONDUIT_INVALID_RETRY' })
})

t.test('bad messages', async (t) => {
  for (const bad of [null, undefined, 'text', 5, ['data']]) {
    t.throws(() => formatEvent(bad as unknown as SSEMessage), { code: 'FST_ERR_CONDUIT_INVALID_MESSAGE' }, String(bad))
  }
  t.throws(() => formatEvent({}), { code: 'FST_ERR_CONDUIT_INVALID_MESSAGE' }, 'an empty message')
  t.throws(() => formatEvent({ data: 10n }), { code: 'FST_ERR_CONDUIT_UNSERIALIZABLE_DATA' }, 'a BigInt')
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  t.throws(() => formatEvent({ data: cycle }), { code: 'FST_ERR_CONDUIT_UNSERIALIZABLE_DATA' }, 'a cycle')
  t.throws(() => formatEvent({ data: () => 1 }), { code: 'FST_ERR_CONDUIT_UNSERIALIZABLE_DATA' }, 'a function')
  t.throws(() => formatEvent({ data: Symbol('s') }), { code: 'FST_ERR_CONDUIT_UNSERIALIZABLE_DATA' }, 'a symbol')
})

t.test('the wire core throws its own typed error; fastify-conduit maps it to the coded one', async (t) => {
  const cases: Array<[SSEMessage, wire.WireErrorType, wire.WireField, string]> = [
    [null as unknown as SSEMessage, 'invalid-message', 'message', 'FST_ERR_CONDUIT_INVALID_MESSAGE'],
    [{}, 'invalid-message', 'message', 'FST_ERR_CONDUIT_INVALID_MESSAGE'],
    [{ event: 'a\nb' }, 'invalid-event-name', 'event', 'FST_ERR_CONDUIT_INVALID_EVENT_NAME'],
    [{ id: 'a\0' }, 'invalid-id', 'id', 'FST_ERR_CONDUIT_INVALID_ID'],
    [{ retry: -1 }, 'invalid-retry', 'retry', 'FST_ERR_CONDUIT_INVALID_RETRY'],
    [{ comment: 1 as unknown as string }, 'invalid-comment', 'comment', 'FST_ERR_CONDUIT_INVALID_COMMENT'],
    [{ data: 10n }, 'unserializable-data', 'data', 'FST_ERR_CONDUIT_UNSERIALIZABLE_DATA']
  ]
  for (const [msg, type, field, code] of cases) {
    let wireError: unknown
    try { wire.formatEvent(msg) } catch (err) { wireError = err }
    t.ok(wireError instanceof wire.WireError, type)
    t.match(wireError, { type, field, reason: String }, type)
    t.notOk((wireError as { code?: string }).code, `${type}: no code of ours in the wire`)
    t.throws(() => formatEvent(msg), { code }, code)
  }
  let cause: unknown
  try { formatEvent({ data: 10n }) } catch (err) { cause = (err as Error).cause }
  t.ok(cause instanceof TypeError, "JSON.stringify's error is kept as the cause")
  const boom = new Error('a getter threw')
  t.throws(() => formatEvent({ get data () { throw boom } }), boom, 'an error of anything but the wire passes as it is')
})

t.test('SSEEvent, as the seed names it', async (t) => {
  const event = new SSEEvent('Hello from server!', 'message', '123', 3000)
  t.equal(event.format(), 'event: message\nid: 123\nretry: 3000\ndata: Hello from server!\n\n')
  t.equal(event.data, 'Hello from server!')
  t.equal(event.event, 'message')
  t.equal(event.id, '123')
  t.equal(event.retry, 3000)
  t.equal(new SSEEvent('x').format(), 'data: x\n\n')
  t.equal(new SSEEvent(undefined, 'done').format(), 'event: done\ndata: \n\n', "the seed's empty done event")
  t.equal(new SSEEvent({ progress: 10 }, 'progress').format(), 'event: progress\ndata: {"progress":10}\n\n')
  t.throws(() => new SSEEvent('x', 'bad\nname'), { code: 'FST_ERR_CONDUIT_INVALID_EVENT_NAME' }, 'invalid at construction')
})

t.test('SSEStream', async (t) => {
  const stream = new SSEStream()
  t.same(stream.getHeaders(), {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no',
    connection: 'keep-alive'
  })
  t.notOk('connection' in stream.getHeaders({ http2: true }), 'no connection-specific header on HTTP/2')
  t.not(stream.getHeaders(), stream.getHeaders(), 'a fresh object each time: callers may add to it')
  t.equal(stream.sendEvent('Current time: 12:30:45', 'time', '1'), 'event: time\nid: 1\ndata: Current time: 12:30:45\n\n')
  t.throws(() => stream.sendEvent('x', 'e', 'bad\0id'), { code: 'FST_ERR_CONDUIT_INVALID_ID' })
})
