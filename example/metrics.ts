// Live server metrics: GET /metrics sends a `metrics` event every second with this instance's
// CPU use, memory, event-loop delay and open SSE streams. A new client first gets the last
// minute, so a chart fills at once. Run it with `npx tsx example/metrics.ts`, then
// `curl -N http://127.0.0.1:3000/metrics`.
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import fastifyConduit from 'fastify-conduit'
import { randomUUID } from 'node:crypto'
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

export const metrics: FastifyPluginAsync<MetricsOptions> = async (app, { interval = 1000, history = 60 }) => {
  // One sampler for all clients, broadcast through a channel: it keeps the last `history`
  // samples for replay and cuts off a client that stops reading. These are this instance's
  // numbers, so the channel is this instance's own: instances sharing a bus (Redis) do not
  // mix their samples.
  const channel = app.sse.channel(`metrics:${randomUUID()}`, { schema: { metrics: Metrics }, history })
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
    channel.publish({ event: 'metrics', data: sample }).catch((err: unknown) => {
      app.log.warn({ err }, 'a metrics sample was not published')
    })
  }, interval).unref()
  app.addHook('onClose', async () => {
    clearInterval(timer)
    loopDelay.disable()
  })

  // reply.sse(channel) replays only after a Last-Event-ID, and a chart wants the last minute
  // at once. So a new client asks for what follows an id the bus never issued (''): the
  // channel then replays all it retains (see "Missed history" in the README). A client that
  // reconnects gets the samples after the last one it has, and no duplicates. (Each stream
  // formats its own frames this way: nothing that matters at one sample a second.)
  app.get('/metrics', (request, reply) =>
    reply.sse(({ signal, lastEventId }) => channel.subscribe({ lastEventId: lastEventId ?? '', signal })))
}

if (import.meta.filename === process.argv[1]) {
  const app = Fastify({ logger: true })
  await app.register(fastifyConduit)
  await app.register(metrics)
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
