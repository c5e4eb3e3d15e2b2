// Live server metrics: GET /metrics sends a `metrics` event every second with this process's
// CPU use, memory, event-loop delay and open SSE streams. A new client first gets the last
// minute, so a chart fills at once. Run it with `npx tsx example/metrics.ts`, then
// `curl -N http://127.0.0.1:3000/metrics`.
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import fastifyConduit from 'fastify-conduit'
import { EventEmitter, on } from 'node:events'
import { monitorEventLoopDelay } from 'node:perf_hooks'

const Metrics = Type.Object({
  at: Type.Integer({ description: 'sample time, ms since the epoch' }),
  cpu: Type.Number({ description: 'CPU time used by this process, % of one core' }),
  memory: Type.Number({ description: 'resident set size, MiB' }),
  heap: Type.Number({ description: 'V8 heap used, MiB' }),
  eventLoopDelay: Type.Number({ description: 'p99 event-loop delay, ms' }),
  openStreams: Type.Integer({ description: 'SSE streams open on this server' })
})
type Sample = Static<typeof Metrics>

export interface MetricsOptions {
  /** Milliseconds between samples. Default 1000. */
  interval?: number
  /** Samples a new client gets at once. Default 60. */
  history?: number
}

const MiB = 1024 * 1024
const round = (n: number): number => Math.round(n * 10) / 10
const toEvent = (sample: Sample) => ({ event: 'metrics' as const, id: sample.at, data: sample })

export const metrics: FastifyPluginAsync<MetricsOptions> = async (app, { interval = 1000, history = 60 }) => {
  // One sampler for all clients: every stream sends the same samples.
  const samples = new EventEmitter().setMaxListeners(0) // one listener per open stream
  const recent: Sample[] = []
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  let cpu = process.cpuUsage()
  let last = performance.now()

  const timer = setInterval(() => {
    const now = performance.now()
    const used = process.cpuUsage(cpu)
    const { rss, heapUsed } = process.memoryUsage()
    const sample: Sample = {
      at: Date.now(),
      cpu: round((used.user + used.system) / 10 / (now - last)), // µs / (ms * 1000) * 100 %
      memory: round(rss / MiB),
      heap: round(heapUsed / MiB),
      eventLoopDelay: round(loopDelay.percentile(99) / 1e6),
      openStreams: app.sse.stats().openStreams
    }
    cpu = process.cpuUsage()
    last = now
    loopDelay.reset()
    recent.push(sample)
    if (recent.length > history) recent.shift()
    samples.emit('sample', sample)
  }, interval).unref()
  app.addHook('onClose', async () => {
    clearInterval(timer)
    loopDelay.disable()
  })

  app.get('/metrics', { schema: { sse: { metrics: Metrics } } }, (request, reply) =>
    reply.sse(async function * ({ signal, lastEventId }) {
      // Listen before taking the backlog (no await in between), so no sample falls in the gap.
      const live = on(samples, 'sample', { signal })
      // The id is the sample's time, so it keeps growing across server restarts: a client that
      // reconnects gets the samples after the last one it has, and no duplicates.
      const after = Number(lastEventId) || 0
      for (const sample of recent.filter((sample) => sample.at > after)) yield toEvent(sample)
      for await (const [sample] of live) yield toEvent(sample as Sample)
    }))
}

if (import.meta.filename === process.argv[1]) {
  const app = Fastify({ logger: true })
  await app.register(fastifyConduit)
  await app.register(metrics)
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
