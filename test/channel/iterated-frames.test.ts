import { Type } from '@sinclair/typebox'
import t from 'tap'
import type { Channel } from '../../lib/channel/channel.js'
import type { EventSchemas } from '../../lib/schema/compile.js'
import type { SSEMessage } from '../../lib/index.js'
import { RawSubscriber, startApp, take, uniqueName } from '../support/index.js'
import type { Test } from './suite.js'

// subscribe() messages are shared by every iterator and where() predicate of the instance:
// they are frozen, and a route without schema.sse that yields one back writes the frame the
// channel made for it (an `id:` line first) instead of serializing it again per subscriber.

const Tick = Type.Object({ i: Type.Integer(), text: Type.String() })

t.test('subscribe() messages are frozen, data and all, and a where() predicate gets the same frozen message', async (t) => {
  let channel!: Channel
  await startApp(t, {}, (app) => { channel = app.sse.channel(uniqueName('frozen')) })
  const seen: unknown[] = []
  const filtered = channel.where((message) => { seen.push(message); return true }).subscribe()
  const subscription = channel.subscribe()
  await Promise.all([subscription.ready, filtered.ready])
  await channel.publish({ event: 'tick', data: { i: 1, list: [{ deep: true }] } })
  const [message] = await take(subscription, 1)
  t.same(message, { event: 'tick', data: { i: 1, list: [{ deep: true }] }, id: message.id })
  t.ok(Object.isFrozen(message) && Object.isFrozen(message.data), 'the message and its data are frozen')
  const data = message.data as { list: Array<{ deep: boolean }> }
  t.ok(Object.isFrozen(data.list) && Object.isFrozen(data.list[0]), 'nested values too')
  t.throws(() => { data.list[0].deep = false }, TypeError, 'a subscriber cannot change what the others get')
  t.same(Object.keys(message), ['event', 'data', 'id'], 'the frame it carries is not enumerable')
  await take(filtered, 1)
  t.equal(seen[0], message, 'parsed once: the predicate saw the very same object')
  await Promise.all([subscription.return(), filtered.return()])
})

/** A route streaming `channel` through a generator that yields what `map` makes of each message. */
async function iteratingApp (t: Test, map: (message: SSEMessage) => SSEMessage, schema?: EventSchemas): Promise<{ channel: Channel, subscriber: RawSubscriber }> {
  let channel!: Channel
  let live!: () => void
  const joined = new Promise<void>((resolve) => { live = resolve })
  const { port } = await startApp(t, {}, (app) => {
    channel = app.sse.channel(uniqueName('iterated'), { schema: { tick: Tick } })
    app.get('/iterate', schema === undefined ? {} : { schema: { sse: schema } }, (request, reply) => reply.sse(source as never))
    // Typed loosely: the route's schema (when given) is not the channel's, on purpose.
    async function * source ({ signal }: { signal: AbortSignal }): AsyncGenerator<SSEMessage> {
      const subscription = channel.subscribe({ signal })
      await subscription.ready
      live()
      for await (const message of subscription) yield map(message)
    }
  })
  const subscriber = new RawSubscriber(port, '/iterate')
  t.teardown(() => subscriber.close())
  await subscriber.head
  await joined
  return { channel, subscriber }
}

t.test('a channel message yielded back as it is: the channel\'s own frame is written', async (t) => {
  const { channel, subscriber } = await iteratingApp(t, (message) => message)
  const id = await channel.publish({ event: 'tick', data: { i: 1, text: 'a' } })
  const [frame] = await subscriber.reader.take(1)
  // formatEvent would write `event:` first; the channel's frame starts with its `id:` line.
  t.equal(frame.raw, `id: ${id}\nevent: tick\ndata: {"i":1,"text":"a"}\n`)
})

t.test('a copy of the message, changed or not, is formatted as any message', async (t) => {
  const { channel, subscriber } = await iteratingApp(t, (message) => ({ ...message, data: { ...(message.data as object), text: 'changed' } }))
  const id = await channel.publish({ event: 'tick', data: { i: 2, text: 'a' } })
  const [frame] = await subscriber.reader.take(1)
  t.equal(frame.raw, `event: tick\nid: ${id}\ndata: {"i":2,"text":"changed"}\n`)
})

t.test('a route with schema.sse formats and validates the message itself: its schema applies', async (t) => {
  const { channel, subscriber } = await iteratingApp(t, (message) => message, { other: Tick })
  await channel.publish({ event: 'tick', data: { i: 3, text: 'a' } })
  // `tick` is not declared on the route: the stream ends (onInvalid: 'close', the default).
  t.same(await subscriber.reader.all(), [], 'nothing written')
})
