import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { Type } from '@sinclair/typebox'
import type { TSchema } from '@sinclair/typebox'
import { Ajv2020 } from 'ajv/dist/2020.js'
import fastifySwagger from '@fastify/swagger'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import fastifyConduit, { openapiEventStreamFallback } from '../../lib/index.js'
import { FrameReader, listen } from '../support/index.js'

// The official OpenAPI 3.2 JSON Schema; see test/fixtures/openapi/README.md for its source.
// Its Schema Objects are `$dynamicRef: '#meta'`, which resolves to its own `$defs/schema` (no
// dialect extends it here); Ajv 8 loses track of evaluated properties through `$dynamicRef` and
// would report every schema's keywords as unevaluated, so the reference is made static.
const OAS_32 = JSON.parse(readFileSync(new URL('../fixtures/openapi/oas-3.2-schema-2025-11-23.json', import.meta.url), 'utf8')
  .replaceAll('"$dynamicRef": "#meta"', '"$ref": "#/$defs/schema"'))
const OAS_31 = JSON.parse(readFileSync(new URL('../fixtures/openapi/oas-3.1-schema-2022-10-07.json', import.meta.url), 'utf8')
  .replaceAll('"$dynamicRef": "#meta"', '"$ref": "#/$defs/schema"'))
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false })
const validateDocument = ajv.compile(OAS_32)
const validate31 = ajv.compile(OAS_31)

const Token = Type.Object({ text: Type.String() })
const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })
const Headline = Type.Object({ title: Type.String(), audience: Type.Optional(Type.String()) })
const Prompt = Type.Object({ prompt: Type.String() })

/** Every SSE route of the app below, by path and method: the events it declares. */
const ROUTES: Record<string, { method: string, events: Record<string, TSchema | { $ref: string }> }> = {
  '/chat': { method: 'get', events: { token: Token, done: Done } },
  '/complete': { method: 'post', events: { token: Token, done: Done } },
  '/ticks': { method: 'get', events: { tick: { $ref: '#/components/schemas/def-0' } } },
  '/plain': { method: 'get', events: { message: Type.Object({ n: Type.Number() }) } },
  '/news': { method: 'get', events: { headline: Headline } }
}

async function build (t: Test, openapi: Record<string, unknown>, convertConstToEnum = false, fallback = false): Promise<FastifyInstance> {
  const app = Fastify({ forceCloseConnections: true })
  await app.register(fastifySwagger, {
    openapi: { info: { title: 'events', version: '1.0.0' }, ...openapi },
    convertConstToEnum,
    ...(fallback ? { transformObject: openapiEventStreamFallback } : {})
  })
  await app.register(fastifyConduit, { heartbeat: false })
  app.addSchema(Type.Object({ n: Type.Number() }, { $id: 'Tick' }))
  const news = app.sse.channel('news', { schema: { headline: Headline } })

  app.get('/chat', { schema: { sse: { token: Token, done: Done } } }, (request, reply) =>
    reply.sse([{ event: 'token', id: '1', data: { text: 'Hello' } }, { event: 'done', data: { reason: 'stop' } }]))
  app.post('/complete', { schema: { body: Prompt, sse: { token: Token, done: Done } } }, (request, reply) =>
    reply.sse([{ event: 'token', data: { text: (request.body as { prompt: string }).prompt } }, { event: 'done', data: { reason: 'length' } }]))
  app.get('/ticks', { schema: { sse: { tick: Type.Ref('Tick') } } }, (request, reply) => reply.sse([{ event: 'tick', data: { n: 1 } }]))
  app.get('/plain', { schema: { sse: { message: Type.Object({ n: Type.Number() }) } } }, (request, reply) => reply.sse([{ data: { n: 2 } }]))
  // A route streaming a channel declares the channel's events as its schema.sse.
  app.get('/news', { schema: { sse: { headline: Headline } } }, (request, reply) => reply.sse(news))
  app.get('/health', { schema: { response: { 200: Type.Object({ ok: Type.Boolean() }) } } }, () => ({ ok: true }))
  t.teardown(() => app.close())
  await app.ready()
  return app
}

function plain (value: unknown): unknown {
  return JSON.parse(JSON.stringify(value))
}

/** What the document should say for one event: the OpenAPI 3.2 SSE example's shape. */
function eventItem (name: string, schema: unknown): unknown {
  return {
    title: name,
    properties: {
      event: { const: name },
      data: { type: 'string', contentMediaType: 'application/json', contentSchema: plain(schema) }
    },
    required: name === 'message' ? ['data'] : ['event', 'data']
  }
}

t.test('an OpenAPI 3.2 document describes every event of every SSE route, and validates', async (t) => {
  const app = await build(t, { openapi: '3.2.0' })
  const document = plain(app.swagger()) as { openapi: string, paths: Record<string, Record<string, any>> }
  t.equal(document.openapi, '3.2.0')
  t.ok(validateDocument(document), JSON.stringify(validateDocument.errors, null, 2))

  for (const [path, { method, events }] of Object.entries(ROUTES)) {
    const response = document.paths[path][method].responses['200']
    t.same(Object.keys(response.content), ['text/event-stream'], path)
    const media = response.content['text/event-stream']
    const item = media.itemSchema
    t.equal(item.type, 'object', path)
    t.same(item.required, ['data'], path)
    t.same(item.properties, {
      event: { type: 'string', description: "The event type; 'message' when the stream sends none." },
      data: { type: 'string' },
      id: { type: 'string', description: 'The event ID: sent back as Last-Event-ID when the client reconnects.' },
      retry: { type: 'integer', minimum: 0, description: 'Reconnection time, in milliseconds.' }
    }, path)
    t.same(item.oneOf, Object.entries(events).map(([name, schema]) => eventItem(name, schema)), `${path}: one item per event`)
    // Each item schema is a JSON Schema 2020-12 schema a validator compiles.
    const checkItem = new Ajv2020({ strict: true, strictTypes: false, strictRequired: false }).compile(item)
    t.equal(checkItem({ event: 'nope', data: '{}' }), false, `${path}: an undeclared event is not an item`)
  }
  // The shared schema is in components, as @fastify/swagger puts every $ref'd one.
  t.same((document as any).components.schemas['def-0'], { type: 'object', properties: { n: { type: 'number' } }, required: ['n'], title: 'Tick' })
  // The request body and a plain JSON route are documented as before.
  t.same(Object.keys(document.paths['/complete'].post.requestBody.content), ['application/json'])
  t.same(Object.keys(document.paths['/health'].get.responses['200'].content), ['application/json'])
})

t.test('itemSchema tells a declared event from a wrong one', async (t) => {
  const app = await build(t, { openapi: '3.2.0' })
  const item = (plain(app.swagger()) as any).paths['/chat'].get.responses['200'].content['text/event-stream'].itemSchema
  const check = new Ajv2020({ strict: false }).compile(item)
  t.ok(check({ event: 'token', data: '{"text":"Hi"}', id: '1' }))
  t.ok(check({ event: 'done', data: '{"reason":"stop"}', retry: 3000 }))
  t.notOk(check({ event: 'token' }), 'data is required')
  t.notOk(check({ data: '{}' }), "an event without a name is a 'message', which /chat does not declare")
  t.notOk(check({ event: 'token', data: '{}', retry: -1 }), 'retry is a non-negative integer')
})

t.test('with @fastify/swagger defaults, const is written as a one-value enum', async (t) => {
  const app = await build(t, { openapi: '3.2.0' }, true)
  const document = plain(app.swagger()) as any
  t.ok(validateDocument(document), JSON.stringify(validateDocument.errors, null, 2))
  const [token] = document.paths['/chat'].get.responses['200'].content['text/event-stream'].itemSchema.oneOf
  t.same(token.properties.event, { enum: ['token'] })
})

t.test('an OpenAPI 3.0 or 3.1 document gets the same response, which their schemas reject for itemSchema', async (t) => {
  for (const version of ['3.0.3', '3.1.1']) {
    const app = await build(t, { openapi: version })
    const document = plain(app.swagger()) as any
    t.equal(document.openapi, version)
    const media = document.paths['/chat'].get.responses['200'].content['text/event-stream']
    t.equal(media.itemSchema.oneOf.length, 2, version)
    t.match(media.schema.description, /Events: token, done/, version)
  }
  const document = plain((await build(t, { openapi: '3.1.1' })).swagger())
  t.notOk(validate31(document))
  t.match(validate31.errors, [{ instancePath: '/paths/~1chat/get/responses/200/content/text~1event-stream', params: { unevaluatedProperty: 'itemSchema' } }])
})

t.test('openapiEventStreamFallback: in a 3.1 document, schema is the item schema, and it validates', async (t) => {
  const document = plain((await build(t, { openapi: '3.1.1' }, false, true)).swagger()) as any
  t.ok(validate31(document), JSON.stringify(validate31.errors, null, 2))
  const reference = plain((await build(t, { openapi: '3.2.0' })).swagger()) as any
  for (const [path, { method }] of Object.entries(ROUTES)) {
    const media = document.paths[path][method].responses['200'].content['text/event-stream']
    t.same(media, { schema: reference.paths[path][method].responses['200'].content['text/event-stream'].itemSchema }, path)
  }
  t.same(document.paths['/health'], reference.paths['/health'], 'other responses untouched')
})

t.test('openapiEventStreamFallback: in a 3.0 document, const, contentMediaType and contentSchema are rewritten', async (t) => {
  const document = plain((await build(t, { openapi: '3.0.3' }, false, true)).swagger()) as any
  const { schema } = document.paths['/chat'].get.responses['200'].content['text/event-stream']
  t.same(schema.oneOf[0].properties, {
    event: { enum: ['token'] },
    data: { type: 'string', 'x-contentMediaType': 'application/json', 'x-contentSchema': { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] } }
  })
  t.notMatch(JSON.stringify(document), /itemSchema|"const"|"contentMediaType"|"contentSchema"/)
  const reference = plain((await build(t, { openapi: '3.2.0' }, false, true)).swagger()) as any
  t.ok(reference.paths['/chat'].get.responses['200'].content['text/event-stream'].itemSchema, 'a 3.2 document is left as it is')
  t.same(openapiEventStreamFallback({ openapiObject: { info: {} } }), { info: {} }, 'no paths, no version: nothing to do')
  t.same(openapiEventStreamFallback({ openapiObject: { openapi: '3.0.3', paths: { '/x': { get: {} }, '/y': undefined } } }), { openapi: '3.0.3', paths: { '/x': { get: {} }, '/y': undefined } })
  const swagger2 = { swagger: '2.0' }
  t.equal(openapiEventStreamFallback({ swaggerObject: swagger2 }), swagger2, 'a Swagger 2.0 document is returned as it is')
})

t.test('a 200 response the route declares is kept', async (t) => {
  const app = Fastify()
  await app.register(fastifySwagger, { openapi: { openapi: '3.2.0', info: { title: 'x', version: '1' } } })
  await app.register(fastifyConduit, { heartbeat: false })
  const own = { description: 'mine', content: { 'text/event-stream': { schema: { type: 'string' } } } }
  app.get('/own', { schema: { sse: { token: Token }, response: { 200: own } } }, (request, reply) => reply.sse([]))
  app.get('/json', { schema: { sse: { token: Token }, response: { 200: Type.Object({ a: Type.String() }) } } }, (request, reply) => reply.sse([]))
  app.get('/other', { schema: { sse: { token: Token }, response: { 200: { content: { 'application/json': { schema: Type.Object({ a: Type.String() }) } } } } } },
    (request, reply) => reply.sse([]))
  t.teardown(() => app.close())
  await app.ready()
  const paths = (plain(app.swagger()) as any).paths
  t.same(paths['/own'].get.responses['200'], { description: 'mine', content: { 'text/event-stream': { schema: { type: 'string' } } } })
  t.same(Object.keys(paths['/json'].get.responses['200'].content), ['application/json'])
  t.same(Object.keys(paths['/other'].get.responses['200'].content), ['application/json', 'text/event-stream'])
})

t.test('a schema shared by several routes is not modified', async (t) => {
  const app = Fastify()
  await app.register(fastifyConduit, { heartbeat: false })
  const schema = { sse: { token: Token } }
  app.get('/a', { schema }, (request, reply) => reply.sse([]))
  app.post('/a', { schema }, (request, reply) => reply.sse([]))
  t.teardown(() => app.close())
  await app.ready()
  t.same(Object.keys(schema), ['sse'])
})

t.test('the documented response changes nothing on the wire', async (t) => {
  const app = await build(t, { openapi: '3.2.0' })
  const url = await listen(app)
  const id = await app.sse.channel('news', { schema: { headline: Headline } }).publish({ event: 'headline', data: { title: 'SSE ships', audience: 'all' } })
  const chat = await FrameReader.open(url + '/chat')
  t.equal(chat.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.same(await chat.all(), ['event: token\nid: 1\ndata: {"text":"Hello"}\n\n', 'event: done\ndata: {"reason":"stop"}\n\n'])
  const complete = await fetch(url + '/complete', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt":"Hi"}' })
  t.equal(await complete.text(), 'event: token\ndata: {"text":"Hi"}\n\nevent: done\ndata: {"reason":"length"}\n\n')
  const news = await FrameReader.open(url + '/news', { 'last-event-id': '0' })
  t.equal(await news.next(), ': gap\n\n', 'id 0 is older than the history')
  t.equal(await news.next(), `id: ${id}\nevent: headline\ndata: {"title":"SSE ships","audience":"all"}\n\n`)
  news.close()
  // An error on an SSE route is still Fastify's JSON error reply.
  const invalid = await fetch(url + '/complete', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(invalid.status, 400)
  t.equal((await invalid.json() as { code: string }).code, 'FST_ERR_VALIDATION')
})
