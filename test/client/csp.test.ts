// Under a Content-Security-Policy without 'unsafe-eval', TypeBox's compiler cannot build its
// checks (`new Function` throws EvalError): the client then checks with TypeBox's Value.
import { test } from 'tap'
import { Type } from '@sinclair/typebox'

const eventStream = (text: string): Response => new Response(text, { status: 200, headers: { 'content-type': 'text/event-stream' } })

test('without code generation, events are checked all the same', async (t) => {
  const { connect } = await t.mockImport<typeof import('../../lib/client/connect.ts')>('../../lib/client/connect.ts', {
    '@sinclair/typebox/compiler': {
      TypeCompiler: {
        Compile () { throw new EvalError('Code generation from strings disallowed for this context') }
      }
    }
  })
  const stream = connect('http://127.0.0.1:1/events', {
    events: { token: Type.Object({ text: Type.String() }) },
    reconnect: false,
    fetch: async () => eventStream('event: token\ndata: {"text":"a"}\n\nevent: token\ndata: {"text":1}\n\n')
  })
  const texts: string[] = []
  try {
    for await (const ev of stream) texts.push(ev.data.text)
    t.fail('the invalid event throws')
  } catch (err: any) {
    t.equal(err.code, 'FST_ERR_CONDUIT_CLIENT_INVALID_DATA')
    t.equal(err.path, '/text')
    t.equal(err.reason, 'Expected string')
  }
  t.same(texts, ['a'])
})

test('the fallback answers as the compiled check does', async (t) => {
  const { compileCheck } = await t.mockImport<typeof import('../../lib/client/check.ts')>('../../lib/client/check.ts', {
    '@sinclair/typebox/compiler': {
      TypeCompiler: {
        Compile () { throw new EvalError('Code generation from strings disallowed for this context') }
      }
    }
  })
  const { check, explain } = compileCheck(Type.Object({ text: Type.String() }))
  t.equal(check({ text: 'a' }), true)
  t.equal(check({ text: 1 }), false)
  t.match(explain({ text: 1 }), { path: '/text', message: 'Expected string' })
})
