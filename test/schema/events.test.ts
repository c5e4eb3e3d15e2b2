import { Type } from '@sinclair/typebox'
import t from 'tap'
import { compileRouteEvents } from '../../lib/index.js'
import type { SSEMessage } from '../../lib/index.js'
import { FrameReader, LogCapture, startApp } from '../support/index.js'

const Token = Type.Object({ text: Type.String() })
const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })

t.test('compileRouteEvents', async (t) => {
  const format = compileRouteEvents({ token: Token, done: Done, message: Type.String() })
  t.equal(format({ event: 'token', id: 1, data: { text: 'Hi' } }), 'event: token\nid: 1\ndata: {"text":"Hi"}\n\n')
  t.equal(format({ event: 'token', data: { text: 'a\nb' } }), 'event: token\ndata: {"text":"a\\nb"}\n\n', 'JSON: one data line')
  t.equal(format({ event: 'token', data: { text: 'x', secret: 'not declared' } as never }), 'event: token\ndata: {"text":"x"}\n\n',
    'properties the schema does not declare are not sent')
  t.equal(format({ data: 'plain' }), 'data: "plain"\n\n', "'message' needs no event line; strings are JSON too")
  t.equal(format({ event: 'message', data: 'plain' }), 'data: "plain"\n\n')
  t.equal(format({ event: 'done', data: { reason: 'stop' }, retry: 5, comment: 'c' }), 'event: done\n: c\nretry: 5\ndata: {"reason":"stop"}\n\n')
  t.equal(format({ id: 9 }), 'id: 9\n\n', 'a control message dispatches nothing and needs no schema')
  t.equal(format({ comment: 'hi' }), ': hi\n\n')

  t.throws(() => format({ event: 'nope', data: {} }), { code: 'FST_ERR_CONDUIT_UNDECLARED_EVENT' })
  t.throws(() => format({ event: 'token', data: { text: 5 } }), { code: 'FST_ERR_CONDUIT_INVALID_DATA', message: /"\/text": Expected string/ })
  t.throws(() => format({ event: 'done', data: { reason: 'other' } }), { code: 'FST_ERR_CONDUIT_INVALID_DATA' })
  t.throws(() => format({ event: 'token' }), { code: 'FST_ERR_CONDUIT_INVALID_DATA' }, 'missing data')
  t.throws(() => format({ event: 'token', data: { text: 'x' }, id: 'a\nb' }), { code: 'FST_ERR_CONDUIT_INVALID_ID' })
  t.throws(() => format(null as unknown as SSEMessage), { code: 'FST_ERR_CONDUIT_INVALID_MESSAGE' })
  t.throws(() => format({}), { code: 'FST_ERR_CONDUIT_INVALID_MESSAGE' })
})

t.test('events whose data may be absent', async (t) => {
  const format = compileRouteEvents({ done: Type.Undefined(), any: Type.Unknown() })
  t.equal(format({ event: 'done' }), 'event: done\ndata: \n\n', 'no data still dispatches')
  t.equal(format({ event: 'any', data: [1, 'two'] }), 'event: any\ndata: [1,"two"]\n\n')
})

t.test('bad schemas fail at compile time', async (t) => {
  t.throws(() => compileRouteEvents(null as never), { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' })
  t.throws(() => compileRouteEvents([] as never), { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' })
  t.throws(() => compileRouteEvents({}), { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' }, 'no event')
  t.throws(() => compileRouteEvents({ '': Token }), { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' }, 'empty name')
  t.throws(() => compileRouteEvents({ 'a\nb': Token }), { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' }, 'name with LF')
  t.throws(() => compileRouteEvents({ a: 'string' as never }), { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' }, 'not a schema')
  t.throws(() => compileRouteEvents({ a: Type.Ref('Missing') }), { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' }, 'does not compile')
})

t.test('a schema fast-json-stringify cannot build falls back to JSON', async (t) => {
  // TypeBox kinds with no JSON Schema form (Date, BigInt) compile as checks only.
  const format = compileRouteEvents({ at: Type.Date(), big: Type.BigInt() })
  t.equal(format({ event: 'at', data: new Date(0) }), 'event: at\ndata: "1970-01-01T00:00:00.000Z"\n\n')
  t.throws(() => format({ event: 'big', data: 1n }), { code: 'FST_ERR_CONDUIT_UNSERIALIZABLE_DATA' })
})

t.test('a route with a bad schema.sse fails at startup', async (t) => {
  await startApp(t, {}, (app) => {
    t.throws(() => app.get('/bad', { schema: { sse: { 'bad\nname': Token } } }, (request, reply) => reply.sse([])),
      { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' })
  })
})

t.test('schema routes over a real socket, and the invalid-event policy', async (t) => {
  const logs = new LogCapture()
  const events = { token: Token, done: Done }
  const source = function * () {
    yield { event: 'token' as const, id: '1', data: { text: 'Hello' } }
    yield { event: 'token' as const, id: '2', data: { text: { secret: 'PAYLOAD-SENTINEL' } } as unknown as { text: string } }
    yield { event: 'done' as const, data: { reason: 'stop' as const } }
  }
  const { url } = await startApp(t, {}, (app) => {
    app.get('/close', { schema: { sse: events } }, (request, reply) => reply.sse(source))
    app.get('/skip', { schema: { sse: events } }, (request, reply) => reply.sse(source, { onInvalid: 'skip' }))
  }, { logger: logs.logger })

  t.same(await (await FrameReader.open(url + '/close')).all(), ['event: token\nid: 1\ndata: {"text":"Hello"}\n\n'],
    "onInvalid 'close': the invalid event and everything after it are not sent")
  t.same(await (await FrameReader.open(url + '/skip')).all(), [
    'event: token\nid: 1\ndata: {"text":"Hello"}\n\n',
    'event: done\ndata: {"reason":"stop"}\n\n'
  ], "onInvalid 'skip': only the invalid event is dropped")

  const errors = logs.lines.filter((line) => line.level === 50)
  t.equal(errors.length, 2)
  for (const line of errors) {
    t.match(line, { reqId: String, code: 'FST_ERR_CONDUIT_INVALID_DATA', reason: /event "token".*"\/text": Expected string/ })
    t.notMatch(JSON.stringify(line), /PAYLOAD-SENTINEL/, 'the payload is never logged')
  }
})

t.test('a route registered before the plugin still gets its schema compiled', async (t) => {
  const { url } = await startApp(t, {}, () => {}, {
    before: (app) => {
      app.register(async (scope) => {
        scope.get('/early', { schema: { sse: { token: Token } } }, (request, reply) => reply.sse([{ event: 'token', data: { text: 'x', n: 1 } as never }]))
      })
    }
  })
  t.same(await (await FrameReader.open(url + '/early')).all(), ['event: token\ndata: {"text":"x"}\n\n'])
})
