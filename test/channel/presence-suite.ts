import { FrameReader, startApp, uniqueName } from '../support/index.js'
import type { BusKit, Test } from './suite.js'

/** Polls `read` until it gives `want` (presence published by another instance takes a round trip); the last value read. */
export async function countReaches (read: () => Promise<number>, want: number, ms = 10_000): Promise<number> {
  const deadline = Date.now() + ms
  let value = await read()
  while (value !== want && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    value = await read()
  }
  return value
}

/**
 * Presence (`channel.subscribers()`), run by test/channel/presence.test.ts on memoryBus() and
 * by test/redis/presence.test.ts on redisBus(): two instances sharing the bus.
 */
export function presenceSuite (t: Test, kit: BusKit): void {
  t.test('subscribers() counts the streams and iterators of every instance, as they come and go', async (t) => {
    const busA = kit.create()
    const busB = kit.peer(busA)
    const name = uniqueName('presence')
    const other = uniqueName('presence-other')
    const a = await startApp(t, { bus: busA }, (app) => {
      app.get('/news', (request, reply) => reply.sse(app.sse.channel(name)))
    })
    const b = await startApp(t, { bus: busB }, (app) => {
      app.get('/both', (request, reply) => reply.sse(app.sse.merge([app.sse.channel(name).where(() => true), app.sse.channel(other)])))
    })
    const onA = a.app.sse.channel(name)
    const onB = b.app.sse.channel(name)
    const otherOnB = b.app.sse.channel(other)
    t.equal(await onA.subscribers(), 0, 'nobody yet')

    const iterator = onA.subscribe()
    await iterator.ready
    t.equal(await onA.subscribers(), 1, 'this instance: exact at once')
    const streamA = await FrameReader.fetch(a.url + '/news')
    const streamB = await FrameReader.fetch(b.url + '/both')
    // A stream counts once it is joined: an event through it says so.
    const id = await onA.publish({ data: 1 })
    await streamA.take(1)
    await streamB.take(1)
    t.ok(id)
    t.equal(await onA.subscribers() >= 2, true)
    t.equal(await countReaches(() => onA.subscribers(), 3), 3, 'A sees its two and B\'s merged stream')
    t.equal(await countReaches(() => onB.subscribers(), 3), 3, 'B sees the same')
    t.equal(await countReaches(() => otherOnB.subscribers(), 1), 1, 'a merged stream counts on each of its channels')

    await iterator.return()
    await streamA.abort()
    t.equal(await countReaches(() => onA.subscribers(), 1), 1, 'those that left stop counting')
    t.equal(await countReaches(() => onB.subscribers(), 1), 1)
    await streamB.abort()
    t.equal(await countReaches(() => onB.subscribers(), 0), 0)
    t.equal(await countReaches(() => onA.subscribers(), 0), 0)
    t.equal(await countReaches(() => otherOnB.subscribers(), 0), 0)
    onB.close()
    t.equal(await onB.subscribers(), 0, 'a closed channel counts nothing')
  })
}
