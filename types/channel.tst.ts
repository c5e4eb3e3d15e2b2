import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { expect, test } from 'tstyche'
import fastifyConduit, { memoryBus } from 'fastify-conduit'
import type { Bus, Channel, ChannelMessage, ChannelSelection, ChannelSubscription, SSEStats } from 'fastify-conduit'
import { redisBus } from 'fastify-conduit/redis'
import type { RedisBus, RedisBusStats } from 'fastify-conduit/redis'

const Headline = Type.Object({ title: Type.String(), rank: Type.Optional(Type.Integer()) })
const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })
type NewsEvents = { headline: typeof Headline, done: typeof Done }

const app = Fastify()

test('register takes a bus and maxBufferedBytes', () => {
  expect(app.register(fastifyConduit, { bus: memoryBus(), maxBufferedBytes: 1 << 20 })).type.not.toRaiseError()
  expect(app.register(fastifyConduit, { bus: redisBus({ url: 'redis://127.0.0.1:6379' }) })).type.not.toRaiseError()
  expect(app.register(fastifyConduit, { bus: 'redis' })).type.toRaiseError("'string' is not assignable")
  expect(app.register(fastifyConduit, { maxBufferedBytes: '4MB' })).type.toRaiseError("'string' is not assignable")
  expect(app.register(fastifyConduit, { lastEventIdQuery: 'lastEventId' })).type.not.toRaiseError()
  expect(app.register(fastifyConduit, { lastEventIdQuery: true })).type.toRaiseError("'boolean' is not assignable")
  expect(memoryBus()).type.toBe<Bus>()
  expect(memoryBus({ history: 10 })).type.toBe<Bus>()
})

test('redisBus takes a URL or an ioredis client, a prefix and a history', () => {
  expect(redisBus()).type.toBe<RedisBus>()
  expect(redisBus()).type.toBeAssignableTo<Bus>()
  expect(redisBus().stats()).type.toBe<RedisBusStats>()
  expect(redisBus({ url: 'redis://127.0.0.1:6379', prefix: 'app:', history: 500 })).type.toBe<RedisBus>()
  expect(redisBus({ client: new Redis({ lazyConnect: true }) })).type.toBe<RedisBus>()
  expect(redisBus({ url: 6379 })).type.toRaiseError("'number' is not assignable")
  expect(redisBus({ client: {} })).type.toRaiseError('is missing the following properties')
})

test('a channel with a schema: publish accepts only declared events with their payloads', () => {
  const news = app.sse.channel('news', { schema: { headline: Headline, done: Done }, history: 100 })
  expect(news).type.toBe<Channel<NewsEvents>>()
  expect(news.name).type.toBe<string>()
  expect(news.publish({ event: 'headline', data: { title: 'SSE ships' } })).type.toBe<Promise<string>>()
  expect(news.publish({ event: 'done', data: { reason: 'stop' } })).type.toBe<Promise<string>>()

  expect(news.publish({ event: 'headlin', data: { title: 'x' } })).type.toRaiseError('not assignable')
  expect(news.publish({ event: 'headline', data: { title: 42 } })).type.toRaiseError('not assignable')
  expect(news.publish({ event: 'done', data: { reason: 'because' } })).type.toRaiseError('not assignable')
  expect(news.publish({ event: 'headline' })).type.toRaiseError('not assignable')
  expect(news.publish({ data: { title: 'x' } })).type.toRaiseError('not assignable')
  // The bus assigns ids; a channel carries events only.
  expect(news.publish({ event: 'headline', data: { title: 'x' }, id: '1' })).type.toRaiseError('not assignable')
  expect(news.publish({ event: 'headline', data: { title: 'x' }, retry: 10 })).type.toRaiseError('not assignable')
  expect(news.publish({ comment: 'hi' })).type.toRaiseError('not assignable')
})

test('a channel without a schema takes any event name and data, still without an id', () => {
  const room = app.sse.channel('room')
  expect(room).type.toBe<Channel>()
  expect(room.publish({ event: 'joined', data: { user: 'ann' } })).type.toBe<Promise<string>>()
  expect(room.publish({ data: 'plain' })).type.toBe<Promise<string>>()
  expect(room.publish({ event: 'joined', id: 7 })).type.toRaiseError('not assignable')
  expect(app.sse.channel('room', { history: '10' })).type.toRaiseError('not assignable')
})

test('subscribe yields typed messages: narrowing on event types data; ids are strings', async () => {
  const news = app.sse.channel('news', { schema: { headline: Headline, done: Done } })
  const subscription = news.subscribe({ lastEventId: '1-1', signal: AbortSignal.timeout(1000) })
  expect(subscription).type.toBe<ChannelSubscription<ChannelMessage<NewsEvents>>>()
  expect(subscription.ready).type.toBe<Promise<void>>()
  expect(subscription.gap).type.toBe<boolean>()
  for await (const message of subscription) {
    expect(message.id).type.toBe<string>()
    if (message.event === 'headline') expect(message.data.title).type.toBe<string>()
    else expect(message.data.reason).type.toBe<'stop' | 'length'>()
  }
  expect(news.subscribe({ lastEventId: 1 })).type.toRaiseError("'number' is not assignable")
  for await (const message of app.sse.channel('room').subscribe()) {
    expect(message).type.toBe<{ event: string, data: unknown, id: string }>()
  }
})

test('reply.sse streams a channel, from any route (the channel brings its own schema)', () => {
  const news = app.sse.channel('news', { schema: { headline: Headline, done: Done } })
  app.get('/news', (request, reply) => {
    expect(reply.sse(news)).type.toBe<Promise<void>>()
  })
  app.get('/typed', { schema: { sse: { other: Type.String() } } }, (request, reply) => {
    expect(reply.sse(news)).type.toBe<Promise<void>>()
  })
})

test('stats count channel traffic', () => {
  expect(app.sse.stats()).type.toBe<SSEStats>()
  expect(app.sse.stats().publishedEvents).type.toBe<number>()
  expect(app.sse.stats().sentEvents).type.toBe<number>()
  expect(app.sse.stats().slowDisconnects).type.toBe<number>()
  expect(app.sse.stats().queuedBytes).type.toBe<number>()
})

test('where() takes a predicate over the typed message; the selection streams and subscribes like the channel', () => {
  const news = app.sse.channel('news', { schema: { headline: Headline, done: Done } })
  const ranked = news.where((message) => message.event === 'headline' && message.data.rank === 1)
  expect(ranked).type.toBe<ChannelSelection<NewsEvents>>()
  expect(ranked.where((message) => message.event === 'done' && message.data.reason === 'stop')).type.toBe<ChannelSelection<NewsEvents>>()
  expect(ranked.subscribe({ lastEventId: '1-1' })).type.toBe<ChannelSubscription<ChannelMessage<NewsEvents>>>()
  expect(news.where((message) => {
    expect(message).type.toBe<ChannelMessage<NewsEvents>>()
    return message.id !== ''
  })).type.toBe<ChannelSelection<NewsEvents>>()
  app.get('/ranked', (request, reply) => {
    expect(reply.sse(ranked)).type.toBe<Promise<void>>()
    expect(reply.sse(news.subscribe({ lastEventId: '1-1' }))).type.toBe<Promise<void>>()
  })
  // Narrowed by the event name only: before that, data is either event's.
  expect(news.where((message) => message.data.title === 'x')).type.toRaiseError('does not exist')
  expect(news.where((message) => message.event === 'headline' && message.data.reason === 'stop')).type.toRaiseError('does not exist')
  expect(news.where((message) => message.event === 'headlin')).type.toRaiseError('no overlap')
  expect(news.where((message) => message.data)).type.toRaiseError('not assignable')
  expect(news.where('headline')).type.toRaiseError('not assignable')
  expect(app.sse.channel('room').where((message) => message.data === 'x')).type.toBe<ChannelSelection>()
})
