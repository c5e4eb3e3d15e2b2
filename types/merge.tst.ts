import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import fastifyConduit from 'fastify-conduit'
import type { ChannelMessage, MergedChannels } from 'fastify-conduit'
import { redisBus } from 'fastify-conduit/redis'
import type { RedisBus } from 'fastify-conduit/redis'

const Headline = Type.Object({ title: Type.String() })
const Alert = Type.Object({ team: Type.String(), level: Type.Integer() })
type NewsEvents = { headline: typeof Headline }
type AlertEvents = { alert: typeof Alert }

const app = Fastify()
await app.register(fastifyConduit)
const news = app.sse.channel('news', { schema: { headline: Headline } })
const alerts = app.sse.channel('alerts', { schema: { alert: Alert } })
const room = app.sse.channel('room')

test('merge: the messages are the union of the channels\' messages, selections included', () => {
  expect(app.sse.merge([news, alerts])).type.toBe<MergedChannels<ChannelMessage<NewsEvents> | ChannelMessage<AlertEvents>>>()
  expect(app.sse.merge([news, alerts.where((message) => message.data.level > 2)]))
    .type.toBe<MergedChannels<ChannelMessage<NewsEvents> | ChannelMessage<AlertEvents>>>()
  expect(app.sse.merge([news])).type.toBe<MergedChannels<ChannelMessage<NewsEvents>>>()
  expect(app.sse.merge([news, room])).type.toBe<MergedChannels<ChannelMessage<NewsEvents> | { event: string, data: unknown, id: string }>>()
  expect(app.sse.merge([news, alerts])).type.not.toBe<MergedChannels<ChannelMessage<NewsEvents>>>()
  expect(app.sse.merge([news]).names).type.toBe<readonly string[]>()
})

test('merge: a where() predicate is typed from its own channel', () => {
  expect(app.sse.merge([news, alerts.where((message) => message.data.title === 'x')])).type.toRaiseError("Property 'title' does not exist")
})

test('merge takes channels and selections only', () => {
  expect(app.sse.merge(['news'])).type.toRaiseError("'string' is not assignable")
  expect(app.sse.merge([news.subscribe()])).type.toRaiseError('is not assignable')
  expect(app.sse.merge(news)).type.toRaiseError('is not assignable')
})

test('reply.sse streams a merge', () => {
  app.get('/dash', (request, reply) => {
    expect(reply.sse(app.sse.merge([news, alerts]))).type.toBe<Promise<void>>()
  })
})

test('presence: subscribers() resolves to a number; redisBus takes presenceInterval', () => {
  expect(news.subscribers()).type.toBe<Promise<number>>()
  expect(redisBus({ presenceInterval: 1000 })).type.toBe<RedisBus>()
  expect(redisBus({ presenceInterval: '1s' })).type.toRaiseError("'string' is not assignable")
})
