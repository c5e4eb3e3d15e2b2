import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { expect, test } from 'tstyche'
import { streamEvents, TestEventStream, type ConduitEvent, type TestStreamEnd } from 'fastify-conduit/testing'

const Token = Type.Object({ text: Type.String() })
const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })
const app = Fastify()

test('with events: a union discriminated by event name, data typed by its schema', async () => {
  const stream = await streamEvents(app, '/chat', { events: { token: Token, done: Done } })
  expect(stream.statusCode).type.toBe<number>()
  expect(stream.text).type.toBe<string | undefined>()
  expect(stream.lastEventId).type.toBe<string>()
  expect(stream.ended).type.toBe<TestStreamEnd | undefined>()
  for await (const ev of stream) {
    expect(ev.event).type.toBe<'token' | 'done'>()
    if (ev.event === 'token') expect(ev.data).type.toBe<{ text: string }>()
    else expect(ev.data.reason).type.toBe<'stop' | 'length'>()
    // @ts-expect-error Property 'text' does not exist
    String(ev.data.text)
  }
  const events = await stream.collect()
  expect(events[0].event).type.toBe<'token' | 'done'>()
  expect(await stream.take(2)).type.toBe<typeof events>()
})

test('without events: any event name, data is the text', async () => {
  const stream = await streamEvents(app, '/events', { lastEventId: '41', limit: 3 })
  expect(stream).type.toBe<TestEventStream<ConduitEvent>>()
  const step = await stream.next()
  if (step.done !== true) expect(step.value.data).type.toBe<string>()
  expect(await streamEvents(app, '/events')).type.toBe<TestEventStream<ConduitEvent>>()
})

test('any Fastify instance: type providers, HTTP/2', async () => {
  const typed = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  expect(streamEvents).type.toBeCallableWith(typed, '/chat')
  expect(streamEvents).type.toBeCallableWith(Fastify({ http2: true }), '/chat')
  expect(streamEvents).type.not.toBeCallableWith({}, '/chat')
})

test('options are typed', () => {
  expect(streamEvents).type.toBeCallableWith(app, '/chat', {
    method: 'POST',
    headers: { authorization: 'Bearer t' },
    query: { n: '2' },
    body: { prompt: 'Hi' },
    lastEventId: '1',
    limit: 2,
    readDelay: 10,
    transport: 'inject'
  })
  expect(streamEvents).type.not.toBeCallableWith(app, '/chat', { transport: 'ws' })
  expect(streamEvents).type.not.toBeCallableWith(app, '/chat', { limit: '2' })
  expect(streamEvents).type.not.toBeCallableWith(app, '/chat', { headers: { n: 2 } })
  expect(streamEvents).type.not.toBeCallableWith(app, '/chat', { lastEventId: 7 })
})
