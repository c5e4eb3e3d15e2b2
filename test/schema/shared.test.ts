import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import t from 'tap'
import { compileRouteEvents } from '../../lib/index.js'
import { FrameReader, LogCapture, startApp } from '../support/index.js'

// Shared schemas (app.addSchema) referenced from schema.sse by $id, as Type.Ref('Tick') writes it.

const Tick = Type.Object({ n: Type.Number() }, { $id: 'Tick' })

t.test('a shared schema referenced from schema.sse checks and serializes events, over a real socket', async (t) => {
  const logs = new LogCapture()
  // The typed form TypeBox documents for a Ref: the same JSON, data typed as Static<typeof Tick>.
  const TickRef = Type.Unsafe<Static<typeof Tick>>(Type.Ref('Tick'))
  const { url } = await startApp(t, {}, (app) => {
    app.get('/ticks', { schema: { sse: { tick: Type.Ref('Tick') } } }, (request, reply) => reply.sse(function * () {
      yield { event: 'tick', id: 1, data: { n: 1, extra: 'not declared' } }
      yield { event: 'tick', id: 2, data: { n: 'two' } }
      yield { event: 'tick', id: 3, data: { n: 3 } }
    }))
    app.get('/typed', { schema: { sse: { tick: TickRef } } }, (request, reply) =>
      reply.sse([{ event: 'tick', data: { n: 7 } }], { onInvalid: 'skip' }))
  }, { logger: { level: 'error', stream: logs.stream }, before: (app) => { app.addSchema(Tick) } })

  t.same(await (await FrameReader.open(url + '/ticks')).all(), ['event: tick\nid: 1\ndata: {"n":1}\n\n'],
    'undeclared properties are not sent; the invalid event ends the stream')
  t.match(logs.lines, [{ code: 'FST_ERR_CONDUIT_INVALID_DATA', reason: /event "tick".*"\/n": Expected number/ }])
  t.same(await (await FrameReader.open(url + '/typed')).all(), ['event: tick\ndata: {"n":7}\n\n'])
})

t.test('shared schemas that refer to each other, written as plain JSON Schema', async (t) => {
  const { url } = await startApp(t, {}, (app) => {
    app.get('/points', { schema: { sse: { point: Type.Array(Type.Ref('Point')) } } }, (request, reply) =>
      reply.sse([
        { event: 'point', data: [{ x: 1, y: 2 }, { x: 0, label: 'origin' }] },
        { event: 'point', data: [{ x: -1 }] },
        { event: 'point', data: [{ x: 1, z: 3 }] },
        { event: 'point', data: [] }
      ], { onInvalid: 'skip' }))
  }, {
    before: (app) => {
      app.addSchema({ $id: 'Coord', type: 'number', minimum: 0 })
      app.addSchema({
        $id: 'Point',
        type: 'object',
        required: ['x'],
        properties: { x: { $ref: 'Coord' }, y: { $ref: 'Coord' }, label: { type: 'string' } },
        additionalProperties: false
      })
    }
  })
  t.same(await (await FrameReader.open(url + '/points')).all(), [
    'event: point\ndata: [{"x":1,"y":2},{"x":0,"label":"origin"}]\n\n',
    'event: point\ndata: []\n\n'
  ], 'a negative Coord and a property Point does not allow are rejected')
})

t.test('each encapsulation context checks against its own shared schemas', async (t) => {
  // One events object for every route: compiled once per context that has routes with it.
  const events = { tick: Type.Ref('Tick') }
  const source = () => [{ event: 'tick' as const, data: { n: 1 } }, { event: 'tick' as const, data: { n: 'one' } }]
  const { url } = await startApp(t, {}, (app) => {
    app.register(async (numbers) => {
      numbers.addSchema(Tick)
      numbers.get('/numbers', { schema: { sse: events } }, (request, reply) => reply.sse(source(), { onInvalid: 'skip' }))
      numbers.get('/numbers-again', { schema: { sse: events } }, (request, reply) => reply.sse(source(), { onInvalid: 'skip' }))
    })
    app.register(async (strings) => {
      strings.addSchema(Type.Object({ n: Type.String() }, { $id: 'Tick' }))
      strings.get('/strings', { schema: { sse: events } }, (request, reply) => reply.sse(source(), { onInvalid: 'skip' }))
    })
  })
  t.same(await (await FrameReader.open(url + '/numbers')).all(), ['event: tick\ndata: {"n":1}\n\n'])
  t.same(await (await FrameReader.open(url + '/numbers-again')).all(), ['event: tick\ndata: {"n":1}\n\n'])
  t.same(await (await FrameReader.open(url + '/strings')).all(), ['event: tick\ndata: {"n":"one"}\n\n'])
})

t.test('a route registered before the plugin uses the shared schemas of its own context', async (t) => {
  const { url } = await startApp(t, {}, () => {}, {
    before: (app) => {
      app.register(async (scope) => {
        scope.addSchema(Tick)
        scope.get('/early', { schema: { sse: { tick: Type.Ref('Tick') } } }, (request, reply) =>
          reply.sse([{ event: 'tick', data: { n: 1, extra: true } }, { event: 'tick', data: { n: 'one' } }], { onInvalid: 'skip' }))
      })
    }
  })
  t.same(await (await FrameReader.open(url + '/early')).all(), ['event: tick\ndata: {"n":1}\n\n'])
})

t.test('a $ref to no shared schema fails the route at registration', async (t) => {
  await startApp(t, {}, (app) => {
    t.throws(() => app.get('/missing', { schema: { sse: { tock: Type.Ref('Tock') } } }, (request, reply) => reply.sse([])),
      { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' })
    // Routes are compiled as they are registered: add shared schemas first.
    t.throws(() => app.get('/early', { schema: { sse: { tock: Type.Ref('Later') } } }, (request, reply) => reply.sse([])),
      { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' })
    app.addSchema(Type.Object({ n: Type.Number() }, { $id: 'Later' }))
  }, { before: (app) => { app.addSchema(Tick) } })
})

t.test('channels use the shared schemas of the context the plugin is registered in', async (t) => {
  const { app } = await startApp(t, {}, () => {}, { before: (app) => { app.addSchema(Tick) } })
  const ticks = app.sse.channel('ticks', { schema: { tick: Type.Ref('Tick') } })
  t.type(await ticks.publish({ event: 'tick', data: { n: 1 } }), 'string')
  await t.rejects(ticks.publish({ event: 'tick', data: { n: 'one' } }), { code: 'FST_ERR_CONDUIT_INVALID_DATA' })
})

// What the shared schemas' JSON Schema keywords mean once TypeBox's kinds are restored.
const cases: Array<[string, Record<string, unknown>, unknown[], unknown[]]> = [
  ['string', { type: 'string', minLength: 2, pattern: '^a' }, ['ab'], ['a', 'bb', 1]],
  ['number', { type: 'number', minimum: 1, maximum: 2 }, [1, 1.5], [0, 3, '1']],
  ['integer', { type: 'integer' }, [1], [1.5]],
  ['boolean', { type: 'boolean' }, [false], [0]],
  ['null', { type: 'null' }, [null], [0]],
  ['several types', { type: ['string', 'null'] }, ['a', null], [1]],
  ['const', { const: 'a' }, ['a'], ['b']],
  ['const null', { const: null }, [null], ['null']],
  ['enum', { enum: ['a', 1, true, null] }, ['a', 1, true, null], ['b', 2, false]],
  ['anyOf', { anyOf: [{ type: 'string' }, { type: 'number' }] }, ['a', 1], [true]],
  ['allOf', { allOf: [{ type: 'number', minimum: 1 }, { type: 'number', maximum: 2 }] }, [1], [3]],
  ['not', { not: { type: 'string' } }, [1], ['a']],
  ['a type and an applicator', { type: 'string', anyOf: [{ const: 'a' }, { const: 'b' }] }, ['a'], ['c']],
  ['object', {
    type: 'object',
    required: ['a'],
    properties: { a: { type: 'number' }, b: { type: 'string' } },
    additionalProperties: { type: 'boolean' }
  }, [{ a: 1 }, { a: 1, b: 'x', c: true }], [{ b: 'x' }, { a: 1, c: 1 }]],
  ['object without properties', { type: 'object', description: 'any object' }, [{}, { a: 1 }], ['a', null]],
  ['record', { type: 'object', patternProperties: { '^x': { type: 'number' } }, additionalProperties: false }, [{ x1: 1 }], [{ x1: 'a' }, { y: 1 }]],
  ['array', { type: 'array', items: { type: 'number' }, contains: { const: 1 } }, [[1, 2]], [[2], ['a', 1]]],
  ['array without items', { type: 'array' }, [[1, 'a']], [{}]],
  ['tuple', { type: 'array', items: [{ type: 'string' }, { type: 'number' }], minItems: 2, maxItems: 2, additionalItems: false }, [['a', 1]], [['a'], [1, 'a']]],
  ['anything', { title: 'no keywords' }, [1, 'a', null], []],
  ['a $ref, its siblings ignored', { $ref: 'Leaf', type: 'number' }, ['leaf'], [1]]
]

t.test('shared schemas in plain JSON Schema: the keywords TypeBox checks', async (t) => {
  const leaf = { $id: 'Leaf', type: 'string' }
  for (const [name, schema, valid, invalid] of cases) {
    const format = compileRouteEvents({ e: Type.Ref('S') }, { S: { $id: 'S', ...schema }, Leaf: leaf })
    for (const data of valid) t.doesNotThrow(() => format({ event: 'e', data }), `${name}: ${JSON.stringify(data)} is valid`)
    for (const data of invalid) {
      t.throws(() => format({ event: 'e', data }), { code: 'FST_ERR_CONDUIT_INVALID_DATA' }, `${name}: ${JSON.stringify(data)} is invalid`)
    }
  }
})

t.test('shared schemas with keywords TypeBox cannot check fail at compile time', async (t) => {
  const unchecked: Array<[string, Record<string, unknown>]> = [
    ['oneOf', { oneOf: [{ type: 'string' }] }],
    ['if/then', { type: 'string', if: { minLength: 1 } }],
    ['a subschema that is not an object', { type: 'object', properties: { a: 5 } }],
    ['keywords of a type without the type', { properties: { a: { type: 'string' } } }],
    ['patternProperties beside properties', { type: 'object', properties: {}, patternProperties: { '^x': {} } }],
    ['several patterns', { type: 'object', patternProperties: { '^x': {}, '^y': {} } }],
    ['a tuple of open length', { type: 'array', items: [{ type: 'string' }] }],
    ['an unknown type', { type: 'date' }],
    ['an object const', { const: { a: 1 } }],
    ['an enum that is not an array', { enum: 'a' }],
    ['an anyOf that is not an array', { anyOf: {} }]
  ]
  for (const [name, schema] of unchecked) {
    t.throws(() => compileRouteEvents({ e: Type.Ref('S') }, { S: { $id: 'S', ...schema } }), { code: 'FST_ERR_CONDUIT_INVALID_SCHEMA' }, name)
  }
})

t.test('only $refs to shared schemas use them', async (t) => {
  // A recursive type refers to itself by an $id of its own; const and default values are data.
  const Node = Type.Recursive((This) => Type.Object({ next: Type.Optional(This) }))
  const format = compileRouteEvents({
    node: Node,
    value: Type.Object({ v: Type.Unknown({ default: { $ref: 'S' } }) }),
    constant: Type.Literal('S')
  }, { S: { $id: 'S', type: 'string' } })
  t.equal(format({ event: 'node', data: { next: {} } }), 'event: node\ndata: {"next":{}}\n\n')
  t.equal(format({ event: 'value', data: { v: 1 } }), 'event: value\ndata: {"v":1}\n\n')
})
