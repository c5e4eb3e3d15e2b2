import { FormatRegistry, Type } from '@sinclair/typebox'
import t from 'tap'
import type { Channel } from '../../lib/channel/channel.js'
import { RawSubscriber, startApp, uniqueName } from '../support/index.js'

// Streams whose where() filters select differently within one batch share one Buffer per
// selection, whatever order they come in: the last selection is tried first, then the others.

t.test('filters selecting alike and differently, interleaved, each get their own selection of one batch', async (t) => {
  let channel!: Channel
  const { port } = await startApp(t, {}, (app) => {
    channel = app.sse.channel(uniqueName('selections'))
    app.get<{ Querystring: { parity: string } }>('/parity', (request, reply) => {
      const parity = Number(request.query.parity)
      return reply.sse(channel.where((message) => (message.data as { i: number }).i % 2 === parity))
    })
  })
  const subscribers: RawSubscriber[] = []
  t.teardown(() => { for (const subscriber of subscribers) subscriber.close() })
  // Even, odd, even, even: joined one after the other (each live before the next comes), the
  // order in which the channel goes through them.
  for (const parity of [0, 1, 0, 0]) {
    const subscriber = new RawSubscriber(port, `/parity?parity=${parity}`)
    subscribers.push(subscriber)
    await subscriber.head
    const probe = 100 + parity
    let seen = false
    while (!seen) {
      await channel.publish({ data: { i: probe } })
      await new Promise((resolve) => setTimeout(resolve, 10))
      seen = subscriber.reader.pending > 0
    }
    while (subscriber.reader.pending > 0) await subscriber.reader.next()
  }
  for (const subscriber of subscribers) while (subscriber.reader.pending > 0) await subscriber.reader.next()
  // One batch: published within one turn of the event loop.
  await Promise.all([0, 1, 2, 3].map((i) => channel.publish({ data: { i } })))
  await channel.publish({ data: { i: 4 } }) // even: the last frame the evens get
  await channel.publish({ data: { i: 5 } }) // odd: the last the odd one gets
  const received = await Promise.all(subscribers.map(async (subscriber, n) => {
    const frames: number[] = []
    const last = n === 1 ? 5 : 4
    for (;;) {
      const frame = await subscriber.reader.next()
      const i = JSON.parse(/data: (.*)\n/.exec(frame ?? '')?.[1] ?? 'null').i as number
      if (i >= 100) continue // a late probe
      frames.push(i)
      if (i === last) return frames
    }
  }))
  t.same(received, [[0, 2, 4], [1, 3, 5], [0, 2, 4], [0, 2, 4]])
})

t.test('a replay to a where() stream never selects an event whose data is not JSON', async (t) => {
  // fast-json-stringify writes an 'unsafe' string unescaped: a quote in it leaves the data
  // that no predicate can look at (see the channel section of the README).
  FormatRegistry.Set('unsafe', () => true)
  const Raw = Type.Object({ text: Type.String({ format: 'unsafe' }) })
  let channel!: Channel<{ raw: typeof Raw }>
  const { port } = await startApp(t, {}, (app) => {
    channel = app.sse.channel(uniqueName('not-json'), { schema: { raw: Raw } })
    app.get('/raw', (request, reply) => reply.sse(channel.where(() => true)))
  })
  const start = await channel.publish({ event: 'raw', data: { text: 'start' } })
  await channel.publish({ event: 'raw', data: { text: 'a"b' } })
  const fine = await channel.publish({ event: 'raw', data: { text: 'fine' } })
  const subscriber = new RawSubscriber(port, '/raw', { 'last-event-id': start })
  t.teardown(() => subscriber.close())
  const [frame] = await subscriber.reader.take(1)
  t.equal(frame.id, fine, 'the event after it is the first one replayed')
  t.equal(frame.data, '{"text":"fine"}')
})
