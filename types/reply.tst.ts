import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import fastifyConduit, { formatEvent, SSEEvent, SSEStream } from 'fastify-conduit'
import type { FastifyConduitOptions, SchemaMessage, SSEMessage, SSEStats } from 'fastify-conduit'

const Token = Type.Object({ text: Type.String() })
const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })

const app = Fastify()

test('register takes the documented options', () => {
  expect(app.register(fastifyConduit, { heartbeat: 15_000, retry: 3_000, onInvalid: 'close', maxConnections: 10 })).type.not.toRaiseError()
  expect(app.register(fastifyConduit, { heartbeat: false })).type.not.toRaiseError()
  expect(app.register(fastifyConduit, { onInvalid: 'ignore' })).type.toRaiseError("'\"ignore\"' is not assignable")
  expect(app.register(fastifyConduit, { heartbeat: '15s' })).type.toRaiseError("'string' is not assignable")
  expect<FastifyConduitOptions>().type.toBeAssignableFrom({ heartbeat: false as const })
})

test('a route with schema.sse accepts only declared events with their payloads', () => {
  app.get('/chat', { schema: { sse: { token: Token, done: Done } } }, (request, reply) => {
    expect(reply.sse(async function * () {
      yield { event: 'token', id: '1', data: { text: 'Hello' } }
      yield { event: 'done', data: { reason: 'stop' } }
    })).type.toBe<Promise<void>>()
    expect(reply.sse([{ event: 'token', data: { text: 'x' } }])).type.not.toRaiseError()
    expect(reply.sse([{ id: 7 }, { comment: 'control messages need no schema' }])).type.not.toRaiseError()

    expect(reply.sse(async function * () {
      yield { event: 'tokn', data: { text: 'Hello' } }
    })).type.toRaiseError('not assignable')
    expect(reply.sse(async function * () {
      yield { event: 'token', data: { text: 42 } }
    })).type.toRaiseError('not assignable')
    expect(reply.sse(async function * () {
      yield { event: 'done', data: { reason: 'because' } }
    })).type.toRaiseError('not assignable')
    expect(reply.sse([{ event: 'token' }])).type.toRaiseError('not assignable')
    expect(reply.sse(function * () {
      yield { data: { text: 'message is not declared' } }
    })).type.toRaiseError('not assignable')
  })
})

test('the source function receives the signal and lastEventId', () => {
  app.get('/ctx', { schema: { sse: { message: Type.String() } } }, (request, reply) =>
    reply.sse(async function * ({ signal, lastEventId }) {
      expect(signal).type.toBe<AbortSignal>()
      expect(lastEventId).type.toBe<string | undefined>()
      yield { data: 'message may leave out event' }
    }))
})

test('the same holds with @fastify/type-provider-typebox', () => {
  const typed = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  typed.get('/chat', { schema: { sse: { token: Token }, querystring: Type.Object({ q: Type.String() }) } }, (request, reply) => {
    expect(request.query.q).type.toBe<string>()
    expect(reply.sse([{ event: 'token', data: { text: 'x' } }])).type.not.toRaiseError()
    expect(reply.sse([{ event: 'token', data: { text: 1 } }])).type.toRaiseError('not assignable')
  })
})

test('a route without schema.sse takes any message', () => {
  app.get('/free', (request, reply) => {
    expect(reply.sse([{ event: 'anything', data: { any: 'shape' } }, { data: 'text' }])).type.not.toRaiseError()
    expect(reply.sse([{ event: 5 }])).type.toRaiseError('not assignable')
    expect(reply.sse([{ retry: '10' }])).type.toRaiseError('not assignable')
    expect(reply.sse(5)).type.toRaiseError('not assignable')
  })
})

test('SchemaMessage', () => {
  type M = SchemaMessage<{ token: typeof Token }>
  expect<M>().type.toBeAssignableFrom({ event: 'token' as const, data: { text: 'x' } })
  expect<M>().type.not.toBeAssignableFrom({ event: 'other' as const, data: { text: 'x' } })
})

test('wire helpers', () => {
  expect(formatEvent({ event: 'e', data: 1, id: 0, retry: 1, comment: 'c' })).type.toBe<string>()
  expect(formatEvent({ id: {} })).type.toRaiseError('not assignable')
  expect(new SSEEvent('data', 'event', 'id', 3000).format()).type.toBe<string>()
  expect(new SSEStream().getHeaders()).type.toBe<Record<string, string>>()
  expect<SSEMessage>().type.toBeAssignableFrom({ data: 'x' })
  expect(app.sse.stats()).type.toBe<SSEStats>()
})
