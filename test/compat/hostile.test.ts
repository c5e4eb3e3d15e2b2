import type { Socket } from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import t from 'tap'
import { eventually } from '../support/index.js'
import { proofScale, recordProof } from '../support/proof.js'
import { noMoreThan, resources } from '../stream/churn.js'
import { ATTACKS, SENSIBLE, attack, readClock, startHostileServer } from './hostile.js'
import type { Answer, Attack } from './hostile.js'

// 1,000 hostile requests (oversized, invalid-UTF-8 and NUL Last-Event-IDs, HEAD, OPTIONS,
// bodies on GET, slow headers, garbage, half requests) and misbehaving sources (throwing at
// once or later, endless or 100,000 invalid events): each is answered sensibly, a clock stream
// on the same server keeps ticking through every batch, the server stays up, and once the
// clients are gone nothing is left open or running. `npm run soak` measures the event-loop
// delay and the clock's largest gap while it runs.

t.test('hostile requests: sensible answers, the other streams go on, nothing left behind', async (t) => {
  const { app, port } = await startHostileServer(t)
  const baseline = resources()
  const clock = readClock(port)
  t.ok(await eventually(() => clock.ticks() > 5, 10_000), 'the clock ticks')
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  clock.resetGap()

  const total = proofScale(1000, 10_000)
  const unexpected: string[] = []
  const answers: Record<string, Record<string, number>> = {}
  const slow: Socket[] = []
  let sent = 0
  let stalled = 0
  while (sent < total) {
    const before = clock.ticks()
    const batch = Array.from({ length: 50 }, (_, i) => ATTACKS[(sent + i) % ATTACKS.length])
    sent += batch.length
    const results = await Promise.all(batch.map((kind) => attack(port, kind, 40).then(({ answer, socket }) => ({ kind, answer, socket }))))
    for (const { kind, answer, socket } of results) {
      const count = (answers[kind] ??= {})
      count[String(answer)] = (count[String(answer)] ?? 0) + 1
      if (!SENSIBLE[kind as Attack].includes(answer as Answer)) unexpected.push(`${kind}: ${answer}`)
      if (answer === 'pending') slow.push(socket)
    }
    // The clock went on during the batch (or does at once after it: nothing holds it).
    if (!await eventually(() => clock.ticks() > before, 2000)) stalled++
  }
  delay.disable()
  t.same(unexpected.slice(0, 10), [], `every answer sensible: ${JSON.stringify(answers)}`)
  t.equal(stalled, 0, 'the clock stream progressed through every batch')

  // The server still answers, and the endless invalid sources stopped with their clients.
  const ok = await attack(port, 'oversized-last-event-id', 1000)
  t.equal(ok.answer, 200, 'still up')
  for (const socket of slow) socket.destroy()
  clock.close()
  t.ok(await eventually(() => app.sse.stats().openStreams === 0, 10_000), `every stream ended (${app.sse.stats().openStreams} open)`)
  t.ok(await eventually(() => noMoreThan(baseline), 10_000),
    `nothing left running: ${JSON.stringify(resources())} (before: ${JSON.stringify(baseline)})`)
  recordProof('hostile', {
    requests: total,
    answers,
    clockMaxGapMs: clock.maxGap(),
    eventLoopDelayMs: { p50: delay.percentile(50) / 1e6, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 }
  })
})
