// Prometheus metrics for SSE streams, from fastify-conduit's diagnostics_channel events:
// streams open and opened, how long they lasted and why they ended, events and bytes sent,
// invalid events, slow subscribers, replay gaps and bus errors. GET /prometheus answers in the
// Prometheus text format. Labels are the route pattern and small fixed sets (never a channel
// name: channels made per room or per user would explode the label space).
// Run it with `npx tsx example/prometheus.ts`, then `curl http://127.0.0.1:3000/prometheus`.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import fastifyConduit, { diagnosticsChannels } from 'fastify-conduit'
import type {
  BusErrorMessage,
  InvalidEventMessage,
  ReplayGapMessage,
  SlowSubscriberMessage,
  StreamCloseMessage,
  StreamOpenMessage
} from 'fastify-conduit'

export interface PrometheusOptions {
  /** The registry the metrics are registered in. Default: a new one. */
  registry?: Registry
  /** Where the metrics are served. Default '/prometheus'. */
  path?: string
}

/** Registers the SSE metrics in `registry` and keeps them up to date; returns what stops it. */
export function conduitMetrics (registry: Registry): () => void {
  const registers = [registry]
  const open = new Gauge({ name: 'sse_streams_open', help: 'SSE streams open now', labelNames: ['route'], registers })
  const streams = new Counter({ name: 'sse_streams_total', help: 'SSE streams ended, by why they ended', labelNames: ['route', 'reason'], registers })
  const duration = new Histogram({
    name: 'sse_stream_duration_seconds',
    help: 'How long SSE streams lasted',
    labelNames: ['route'],
    buckets: [0.1, 1, 10, 60, 300, 1800, 3600, 14_400],
    registers
  })
  const events = new Counter({ name: 'sse_events_sent_total', help: 'Events written to SSE streams', labelNames: ['route'], registers })
  const bytes = new Counter({ name: 'sse_bytes_sent_total', help: 'Bytes written to SSE streams (before compression)', labelNames: ['route'], registers })
  const invalid = new Counter({ name: 'sse_invalid_events_total', help: 'Events not written: they failed their schema or a wire rule', labelNames: ['route', 'policy'], registers })
  const slow = new Counter({ name: 'sse_slow_subscribers_total', help: 'Channel subscribers dropped for falling behind', labelNames: ['subscriber'], registers })
  const gaps = new Counter({ name: 'sse_replay_gaps_total', help: 'Reconnections whose Last-Event-ID was older than the history', labelNames: ['subscriber'], registers })
  const busErrors = new Counter({ name: 'sse_bus_errors_total', help: 'Bus failures', labelNames: ['operation'], registers })

  const route = (stream: { route: string | undefined } | undefined): string => stream?.route ?? 'unknown'
  const listeners: Array<[string, (message: unknown) => void]> = [
    [diagnosticsChannels.streamOpen, (message) => {
      open.inc({ route: route((message as StreamOpenMessage).stream) })
    }],
    [diagnosticsChannels.streamClose, (message) => {
      const { stream, reason, duration: ms, events: sent, bytes: written } = message as StreamCloseMessage
      const labels = { route: route(stream) }
      open.dec(labels)
      streams.inc({ ...labels, reason })
      duration.observe(labels, ms / 1000)
      events.inc(labels, sent)
      bytes.inc(labels, written)
    }],
    [diagnosticsChannels.invalidEvent, (message) => {
      const { stream, policy } = message as InvalidEventMessage
      invalid.inc({ route: route(stream), policy })
    }],
    [diagnosticsChannels.slowSubscriber, (message) => { slow.inc({ subscriber: (message as SlowSubscriberMessage).subscriber }) }],
    [diagnosticsChannels.replayGap, (message) => { gaps.inc({ subscriber: (message as ReplayGapMessage).subscriber }) }],
    [diagnosticsChannels.busError, (message) => { busErrors.inc({ operation: (message as BusErrorMessage).operation }) }]
  ]
  for (const [name, listener] of listeners) subscribe(name, listener)
  return () => {
    for (const [name, listener] of listeners) unsubscribe(name, listener)
  }
}

/** The metrics, served at `path`; register it once per process (the channels are process-wide). */
export const prometheus: FastifyPluginAsync<PrometheusOptions> = async (app, { registry = new Registry(), path = '/prometheus' }) => {
  const stop = conduitMetrics(registry)
  app.addHook('onClose', async () => { stop() })
  app.get(path, async (request, reply) => reply.type(registry.contentType).send(await registry.metrics()))
}

if (import.meta.filename === process.argv[1]) {
  const app = Fastify({ logger: true })
  await app.register(fastifyConduit)
  await app.register(prometheus)
  app.get('/ticks', (request, reply) => reply.sse(async function * ({ signal }) {
    for (let n = 0; !signal.aborted; n++) {
      yield { data: { n } }
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
  }))
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
