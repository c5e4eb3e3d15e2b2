import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import t from 'tap'
import { diagnosticsChannels } from '../../lib/index.js'
import { eventually, rawGet, startChannelApp } from '../support/index.js'
import { pausedClients, proofScale, recordProof } from '../support/proof.js'
import { collector, settledHeap } from '../stream/churn.js'

// 1,000 subscribers of one channel that never read, and a publisher as fast as publish()
// resolves: the server holds at most maxBufferedBytes per subscriber plus a fixed overhead
// (not what was published times the subscribers), the publisher is never held back (it
// publishes ten times what the subscribers may hold together, waiting for none of them), and
// every subscriber is cut and counted, in stats() and on the slowSubscriber diagnostics channel.

t.test('1,000 non-reading subscribers: bounded memory, a publisher that goes on, every one cut and counted', async (t) => {
  const gc = collector()
  const subscribers = proofScale(1000, 5000)
  const maxBufferedBytes = 16 * 1024
  const { app, port, channel } = await startChannelApp(t, { maxBufferedBytes, maxConnections: 100_000 }, '/crowd', 'crowd')
  const slow: unknown[] = []
  const onSlow = (message: unknown): void => { slow.push(message) }
  subscribe(diagnosticsChannels.slowSubscriber, onSlow)
  t.teardown(() => unsubscribe(diagnosticsChannels.slowSubscriber, onSlow))

  pausedClients(t, port, '/crowd', subscribers)
  t.ok(await eventually(() => app.sse.stats().openStreams === subscribers, 60_000), `${subscribers} subscribed`)
  const baseline = await settledHeap(gc)
  // What is held, measured after a full GC (garbage not yet collected does not count): often
  // while the subscribers are being cut, then at ten points of the run.
  let held = 0

  // Ten times what the subscribers may hold together: kept, it would pass the bound below.
  const payload = 'p'.repeat(4096)
  const target = Math.ceil(10 * subscribers * maxBufferedBytes / payload.length)
  const measureEvery = Math.ceil(target / 10 / 16) * 16
  let published = 0
  const started = Date.now()
  while (published < target) {
    await Promise.all(Array.from({ length: 16 }, () => channel.publish({ data: payload })))
    published += 16
    // The event loop turns now and then, as with any publisher that does I/O.
    if (published % 256 === 0) await new Promise((resolve) => setImmediate(resolve))
    if (published <= 256 || published % measureEvery === 0 || published >= target) held = Math.max(held, await settledHeap(gc) - baseline)
  }
  const ms = Date.now() - started
  const stats = app.sse.stats()
  t.equal(stats.slowDisconnects, subscribers, 'every subscriber cut and counted in stats()')
  t.equal(slow.length, subscribers, 'and on the slowSubscriber diagnostics channel')
  t.ok(await eventually(() => app.sse.stats().openStreams === 0, 10_000), 'their streams ended')
  const bound = subscribers * maxBufferedBytes + 48 * 1024 * 1024
  const publishedBytes = published * payload.length
  t.ok(held <= bound, `held at most ${(held / 1024 / 1024).toFixed(1)} MB above the baseline: bound ${(bound / 1024 / 1024).toFixed(1)} MB (${subscribers} × ${maxBufferedBytes / 1024} KiB + 48 MB)`)
  t.equal(published, target, `the publisher went on: ${(publishedBytes / 1024 / 1024).toFixed(1)} MB published, never waiting for a subscriber`)
  recordProof('crowd', { subscribers, maxBufferedBytes, published, publishedBytes, maxHeldBytes: held, boundBytes: bound, ms, publishesPerSecond: Math.round(published / (ms / 1000)) })
})

t.test('a publisher that never lets the event loop turn: subscribers get its events as it goes, the batch stays bounded', async (t) => {
  const { app, port, channel } = await startChannelApp(t, {}, '/busy', 'busy')
  const socket = rawGet(port, '/busy', { Accept: 'text/event-stream' })
  t.teardown(() => socket.destroy())
  t.ok(await eventually(() => app.sse.stats().openStreams === 1, 10_000), 'subscribed')
  // On memoryBus, publish() resolves without I/O: this loop never gives the event loop a turn.
  // Before, its events piled up in one batch until the loop ended (or the string passed 512 MB).
  // 4 KiB each: a batch goes out at 256 KiB, every 64 events.
  const payload = 'b'.repeat(4096)
  let sentDuring = 0
  for (let n = 0; n < 1000; n++) {
    await channel.publish({ data: payload })
    sentDuring = app.sse.stats().sentEvents
  }
  t.ok(sentDuring >= 900, `the subscriber was written ${sentDuring} of 1000 events while the loop ran`)
})

t.test('what one turn publishes goes out as one batch, up to 256 KiB: a burst of 1,000 small events is not cut', async (t) => {
  const { app, port, channel } = await startChannelApp(t, {}, '/burst', 'burst')
  const socket = rawGet(port, '/burst', { Accept: 'text/event-stream' })
  t.teardown(() => socket.destroy())
  let received = ''
  socket.on('data', (chunk: Buffer) => { received += chunk.toString() })
  t.ok(await eventually(() => app.sse.stats().openStreams === 1, 10_000), 'subscribed')
  // About 150 bytes on the wire each, 150 KB in all: more than the 64 KiB that used to cut a
  // turn's batch in two (one more write per subscriber per turn, a third of a broadcast's speed).
  const payload = 'c'.repeat(100)
  const sentBefore = app.sse.stats().sentEvents
  let sentDuring = 0
  for (let n = 0; n < 1000; n++) {
    await channel.publish({ data: payload })
    sentDuring = Math.max(sentDuring, app.sse.stats().sentEvents - sentBefore)
  }
  t.equal(sentDuring, 0, 'nothing was handed over while the turn lasted')
  t.ok(await eventually(() => app.sse.stats().sentEvents - sentBefore === 1000, 10_000), 'then all 1,000 at once, at the end of the turn')
  t.ok(await eventually(() => (received.match(/^data: c+$/gm) ?? []).length === 1000, 10_000), 'and the client got every one')
})
