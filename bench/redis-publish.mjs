// node bench/redis-publish.mjs [--events 20000] [--runs 5] [--url redis://127.0.0.1:6379]
//
// Throughput of redisBus publish() against a real Redis (npm run build first): events/s with
// one publish in flight at a time (latency-bound) and with 256 in flight (pipelined), and the
// CPU time this process spent per publish (less noisy than throughput on a shared machine);
// median and min–max over the runs. Each run publishes to a fresh channel, deleted afterwards.
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { redisBus } from '../dist/esm/redis/index.js'

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    runs: { type: 'string', default: '5' },
    url: { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' }
  }
})
const events = Number(args.events)
const runs = Number(args.runs)
const prefix = `conduit-bench:${randomBytes(4).toString('hex')}:`
const body = 'event: tick\ndata: {"n":12345,"text":"a small event of about a hundred bytes, as a dashboard sends"}\n\n'

const bus = redisBus({ url: args.url, prefix, history: 1000 })
await bus.ready()
const results = { sequential: [], pipelined: [] }
const cpu = { sequential: [], pipelined: [] }
for (let run = 0; run < runs; run++) {
  for (const [mode, inFlight] of [['sequential', 1], ['pipelined', 256]]) {
    const channel = `${mode}-${run}`
    const count = mode === 'sequential' ? Math.ceil(events / 4) : events
    let next = 0
    const start = process.hrtime.bigint()
    const used = process.cpuUsage()
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (next++ < count) await bus.publish(channel, body, 1000)
    }))
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    results[mode].push(count / seconds)
    const { user, system } = process.cpuUsage(used)
    cpu[mode].push((user + system) / count)
  }
}
await bus.close()
const admin = new Redis(args.url)
// The channels, and the idempotency keys of the last publishes (they expire by themselves).
let cursor = '0'
do {
  const [next, keys] = await admin.scan(cursor, 'MATCH', prefix + '*', 'COUNT', 1000)
  if (keys.length > 0) await admin.unlink(...keys)
  cursor = next
} while (cursor !== '0')
await admin.quit()

for (const [mode, rates] of Object.entries(results)) {
  const [median, min, max] = summary(rates)
  const [cpuMedian, cpuMin, cpuMax] = summary(cpu[mode]).map((us) => us.toFixed(1))
  console.log(`${mode.padEnd(10)} ${Math.round(median)} events/s (min ${Math.round(min)}, max ${Math.round(max)}); ` +
    `${cpuMedian} µs CPU per publish (min ${cpuMin}, max ${cpuMax}); ${runs} runs`)
}

function summary (values) {
  const sorted = [...values].sort((a, b) => a - b)
  return [sorted[Math.floor(sorted.length / 2)], sorted[0], sorted.at(-1)]
}
