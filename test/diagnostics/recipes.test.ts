import t from 'tap'
import { Type } from '@sinclair/typebox'
import { Registry } from 'prom-client'
import { SpanStatusCode } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { streamEvents } from 'fastify-conduit/testing'
import { prometheus } from '../../example/prometheus.ts'
import { traceConduitStreams } from '../../example/opentelemetry.ts'
import { startPackageApp, take, uniqueName } from '../support/index.js'

// The README's recipes, run as a user runs them: the examples import fastify-conduit by name.

const Token = Type.Object({ text: Type.String() })

/** The value of one sample in Prometheus text, or undefined. */
function sample (text: string, metric: string): number | undefined {
  const line = text.split('\n').find((line) => line.startsWith(metric + ' '))
  return line === undefined ? undefined : Number(line.slice(metric.length + 1))
}

t.test('Prometheus: streams, reasons, durations, events, bytes, invalid events, gaps, served at /prometheus', async (t) => {
  const registry = new Registry()
  const news = uniqueName('news')
  const { app } = await startPackageApp(t, {}, (app) => {
    app.register(prometheus, { registry })
    app.get('/chat', { schema: { sse: { token: Token } } }, (request, reply) =>
      reply.sse([{ event: 'token', data: { text: 'a' } }, { event: 'token', data: { text: 'b' } }, { event: 'token', data: { text: 3 } as never }], { onInvalid: 'skip' }))
    app.get('/news', (request, reply) => reply.sse(app.sse.channel(news)))
  })
  let bytes = 0
  for (let i = 0; i < 2; i++) {
    const response = await app.inject({ url: '/chat' })
    bytes += response.rawPayload.length
  }
  await app.sse.channel(news).publish({ data: 'x' })
  const gap = await streamEvents(app, '/news', { lastEventId: '0', limit: 1 })
  await gap.collect()
  const open = await streamEvents(app, '/news')
  const watcher = app.sse.channel(news).subscribe()
  await watcher.ready
  await app.sse.channel(news).publish({ data: 'y' })
  await take(watcher, 1)
  await open.take(1)

  const text = (await app.inject({ url: '/prometheus' })).body
  t.equal(sample(text, 'sse_streams_open{route="/news"}'), 1, 'the stream still open')
  t.equal(sample(text, 'sse_streams_total{route="/chat",reason="end"}'), 2)
  t.equal(sample(text, 'sse_streams_total{route="/news",reason="client"}'), 1, 'the one that left after 1 event')
  t.equal(sample(text, 'sse_events_sent_total{route="/chat"}'), 4)
  t.equal(sample(text, 'sse_bytes_sent_total{route="/chat"}'), bytes)
  t.equal(sample(text, 'sse_stream_duration_seconds_count{route="/chat"}'), 2)
  t.equal(sample(text, 'sse_invalid_events_total{route="/chat",policy="skip"}'), 2)
  t.equal(sample(text, 'sse_replay_gaps_total{subscriber="stream"}'), 1)
  t.match(text, /# TYPE sse_slow_subscribers_total counter/)
  t.match(text, /# TYPE sse_bus_errors_total counter/)
  await open.close()
  await watcher.return()
})

t.test('OpenTelemetry: one span per stream with its counts; invalid events as span events', async (t) => {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const stop = traceConduitStreams(provider.getTracer('test'))
  t.teardown(stop)
  const { app } = await startPackageApp(t, {}, (app) => {
    app.get('/chat/:room', { schema: { sse: { token: Token } } }, (request, reply) =>
      reply.sse(Array.from({ length: 1000 }, (_, i) => ({ event: 'token' as const, id: String(i), data: { text: 'x' } }))))
    app.get('/bad', { schema: { sse: { token: Token } } }, (request, reply) =>
      reply.sse([{ event: 'token', data: { text: 'ok' } }, { event: 'token', data: {} as never }]))
  })
  const chat = await streamEvents(app, '/chat/lobby', { lastEventId: '-1' })
  t.equal((await chat.collect()).length, 1000)
  await (await streamEvents(app, '/bad')).collect()
  await app.close()

  const spans = exporter.getFinishedSpans()
  t.equal(spans.length, 2, 'one span per stream, none per event')
  const [ok, bad] = spans
  t.equal(ok.name, 'SSE GET /chat/:room')
  t.match(ok.attributes, { 'http.request.method': 'GET', 'http.route': '/chat/:room', 'sse.resumed': true, 'sse.events': 1000, 'sse.end_reason': 'end' })
  t.ok((ok.attributes['sse.bytes'] as number) > 1000 * 20)
  t.equal(ok.status.code, SpanStatusCode.UNSET)
  t.match(bad.attributes, { 'sse.events': 1, 'sse.end_reason': 'invalid', 'sse.resumed': false })
  t.equal(bad.status.code, SpanStatusCode.ERROR)
  t.match(bad.events.map((event) => [event.name, event.attributes]), [['sse.invalid_event', { 'error.type': 'FST_ERR_CONDUIT_INVALID_DATA', 'sse.on_invalid': 'close' }]])
  await provider.shutdown()
})
