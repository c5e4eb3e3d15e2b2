// OpenTelemetry tracing for SSE streams, from fastify-conduit's diagnostics_channel events: one
// span per stream, from open to the end of its response, with its counts as attributes; never
// a span per event (a stream may carry millions). Invalid events are span events. The span
// starts in the handler's context, so with the HTTP (or Fastify) instrumentation it is a child
// of the request's span.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import type { Span, Tracer } from '@opentelemetry/api'
import { diagnosticsChannels } from 'fastify-conduit'
import type { InvalidEventMessage, StreamCloseMessage, StreamInfo, StreamOpenMessage } from 'fastify-conduit'

/** Traces every SSE stream with `tracer`; returns what stops it. */
export function traceConduitStreams (tracer: Tracer = trace.getTracer('fastify-conduit')): () => void {
  const spans = new WeakMap<StreamInfo, Span>()
  const listeners: Array<[string, (message: unknown) => void]> = [
    [diagnosticsChannels.streamOpen, (message) => {
      const { stream } = message as StreamOpenMessage
      const span = tracer.startSpan(`SSE ${stream.method} ${stream.route ?? ''}`.trimEnd(), {
        kind: SpanKind.INTERNAL,
        attributes: {
          'http.request.method': stream.method,
          ...(stream.route === undefined ? {} : { 'http.route': stream.route }),
          ...(stream.channel === undefined ? {} : { 'sse.channel': stream.channel }),
          'sse.resumed': stream.lastEventId !== undefined
        }
      })
      spans.set(stream, span)
    }],
    [diagnosticsChannels.invalidEvent, (message) => {
      const { stream, error, policy } = message as InvalidEventMessage
      const span = stream === undefined ? undefined : spans.get(stream)
      span?.addEvent('sse.invalid_event', { 'error.type': error.code ?? error.name, 'sse.on_invalid': policy })
    }],
    [diagnosticsChannels.streamClose, (message) => {
      const { stream, events, bytes, reason } = message as StreamCloseMessage
      const span = spans.get(stream)
      if (span === undefined) return
      spans.delete(stream)
      span.setAttributes({ 'sse.events': events, 'sse.bytes': bytes, 'sse.end_reason': reason })
      if (reason === 'error' || reason === 'invalid' || reason === 'refused') {
        span.setStatus({ code: SpanStatusCode.ERROR, message: `stream ended: ${reason}` })
      }
      span.end()
    }]
  ]
  for (const [name, listener] of listeners) subscribe(name, listener)
  return () => {
    for (const [name, listener] of listeners) unsubscribe(name, listener)
  }
}
