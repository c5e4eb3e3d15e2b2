import { Type } from '@sinclair/typebox'
import { expect, test } from 'tstyche'
import {
  ClientEventTooLargeError,
  ClientIdleTimeoutError,
  ClientInvalidDataError,
  connect,
  EventStreamParser,
  type ConduitClientErrorType,
  type ClientEventStream,
  type ConduitEvent,
  type EventStream,
  type GapInfo,
  type HeadersOption,
  type ParsedEvent,
  type ParserOptions,
  type ReconnectInfo
} from 'fastify-conduit/client'

const Token = Type.Object({ text: Type.String() })
const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })

test('with events: a union discriminated by event name, data typed by its schema', async () => {
  const stream = connect('http://127.0.0.1:3000/chat', { events: { token: Token, done: Done } })
  expect(stream.lastEventId).type.toBe<string>()
  for await (const ev of stream) {
    expect(ev.event).type.toBe<'token' | 'done'>()
    expect(ev.id).type.toBe<string>()
    expect(ev.retry).type.toBe<number | undefined>()
    if (ev.event === 'token') {
      expect(ev.data).type.toBe<{ text: string }>()
      expect(ev.data.text).type.toBe<string>()
      expect(ev.data).type.not.toHaveProperty('reason')
    } else {
      expect(ev.event).type.toBe<'done'>()
      expect(ev.data.reason).type.toBe<'stop' | 'length'>()
      expect(ev.data).type.not.toHaveProperty('text')
    }
    // Before narrowing, only what every event has is there.
    expect(ev.data).type.not.toHaveProperty('text')
    // @ts-expect-error Property 'text' does not exist
    String(ev.data.text)
    // @ts-expect-error This comparison appears to be unintentional
    expect(ev.event === 'tokn').type.toBe<boolean>()
  }
})

test('without events: any event name, data is the string as received', async () => {
  const stream = connect(new URL('http://127.0.0.1:3000/events'), { lastEventId: '41' })
  expect(stream).type.toBe<ClientEventStream<ConduitEvent>>()
  for await (const ev of stream) {
    expect(ev).type.toBe<ConduitEvent<string, string>>()
    expect(ev.data).type.toBe<string>()
    expect(ev.event).type.toBe<string>()
  }
  expect(connect('http://x/')).type.toBe<ClientEventStream<ConduitEvent>>()
})

test('EventStream, the former name of ClientEventStream, still compiles', () => {
  const stream: EventStream<ConduitEvent> = connect('http://x/')
  expect(stream).type.toBe<ClientEventStream<ConduitEvent>>()
})

test('events without data, and the default message event', async () => {
  const stream = connect('http://x/', { events: { message: Type.Number(), ping: Type.Undefined() } })
  for await (const ev of stream) {
    if (ev.event === 'message') expect(ev.data).type.toBe<number>()
    else expect(ev.data).type.toBe<undefined>()
  }
})

test('options are typed', () => {
  expect(connect).type.toBeCallableWith('http://x/', {
    signal: new AbortController().signal,
    headers: { authorization: 'Bearer t' },
    method: 'POST',
    body: '{}',
    reconnect: { minDelay: 100, maxDelay: 30_000 },
    onReconnect: (info: ReconnectInfo) => { expect(info.attempt).type.toBe<number>() },
    fetch: globalThis.fetch
  })
  expect(connect).type.toBeCallableWith('http://x/', { reconnect: false })
  expect(connect).type.not.toBeCallableWith('http://x/', { reconnect: true })
  expect(connect).type.not.toBeCallableWith('http://x/', { reconnect: { minDelay: '100' } })
  expect(connect).type.not.toBeCallableWith('http://x/', { lastEventId: 7 })
  expect(connect).type.not.toBeCallableWith('http://x/', { events: { token: { text: 'not a schema' } } })
  expect(connect).type.not.toBeCallableWith('http://x/', { body: new ReadableStream() })
  expect(connect).type.not.toBeCallableWith('http://x/', { retry: 100 })
  expect(connect).type.not.toBeCallableWith(42)
})

test('headers: given, or made per attempt by a sync or async function', () => {
  expect(connect).type.toBeCallableWith('http://x/', { headers: [['a', '1']] })
  expect(connect).type.toBeCallableWith('http://x/', { headers: () => ({ authorization: 'Bearer t' }) })
  expect(connect).type.toBeCallableWith('http://x/', { headers: async () => new Headers({ a: '1' }) })
  expect(connect).type.toBeCallableWith('http://x/', { headers: () => Promise.resolve([['a', '1']] as Array<[string, string]>) })
  expect(connect).type.not.toBeCallableWith('http://x/', { headers: () => 42 })
  expect(connect).type.not.toBeCallableWith('http://x/', { headers: async () => 'Bearer t' })
  expect(connect).type.not.toBeCallableWith('http://x/', { headers: (token: string) => ({ authorization: token }) })
  expect<HeadersOption>().type.toBeAssignableFrom<() => Promise<Record<string, string>>>()
})

test('idleTimeout: milliseconds or false; maxEventSize: bytes', () => {
  expect(connect).type.toBeCallableWith('http://x/', { idleTimeout: 45_000, maxEventSize: 1024 })
  expect(connect).type.toBeCallableWith('http://x/', { idleTimeout: false })
  expect(connect).type.not.toBeCallableWith('http://x/', { idleTimeout: true })
  expect(connect).type.not.toBeCallableWith('http://x/', { idleTimeout: '45s' })
  expect(connect).type.not.toBeCallableWith('http://x/', { maxEventSize: false })
  expect(connect).type.not.toBeCallableWith('http://x/', { maxEventSize: '1MB' })
})

test('onGap: told the Last-Event-ID after which events were lost', () => {
  expect(connect).type.toBeCallableWith('http://x/', {
    onGap: (info: GapInfo) => { expect(info.lastEventId).type.toBe<string>() }
  })
  expect(connect).type.toBeCallableWith('http://x/', { onGap: () => {} })
  expect(connect).type.not.toBeCallableWith('http://x/', { onGap: (info: { lastEventId: number }) => info })
  expect(connect).type.not.toBeCallableWith('http://x/', { onGap: true })
})

test('errors carry code, type and their fields', () => {
  const error = new ClientInvalidDataError('token', '/text', 'Expected string')
  expect(error.code).type.toBe<string>()
  expect(error.type).type.toBe<ConduitClientErrorType>()
  expect(error.path).type.toBe<string>()
  expect(error).type.toBeAssignableTo<Error>()
  expect(new ClientEventTooLargeError(10).maxEventSize).type.toBe<number>()
  expect(new ClientIdleTimeoutError(10).idleTimeout).type.toBe<number>()
  expect<ConduitClientErrorType>().type.toBeAssignableFrom<'event-too-large' | 'idle-timeout'>()
})

test('the parser', () => {
  const parser = new EventStreamParser('41')
  expect(parser.feed(new Uint8Array())).type.toBe<ParsedEvent[]>()
  expect(parser.lastEventId).type.toBe<string>()
  expect(parser.retry).type.toBe<number | undefined>()
  expect(parser.feed).type.not.toBeCallableWith('data: a\n\n')
  expect(parser.feed).type.toBeCallableWith(new Uint8Array(), [] as ParsedEvent[])
  const options: ParserOptions = { maxEventSize: 1024, onComment: (comment) => { expect(comment).type.toBe<string>() } }
  expect(EventStreamParser).type.toBeConstructableWith('', options)
  expect(EventStreamParser).type.not.toBeConstructableWith('', { maxEventSize: '1MB' })
  expect(EventStreamParser).type.not.toBeConstructableWith({ maxEventSize: 10 })
})
