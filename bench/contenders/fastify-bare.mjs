// Bare Fastify, no SSE plugin: what Fastify itself costs an idle stream (idle scenario only).
// Default variant: `reply.send(new PassThrough())` with the SSE headers, the head flushed when
// Fastify pipes the body (as fastify-conduit does): Fastify's request and reply, its onSend and
// onResponse path, its end-of-stream watchers and the pipe. Variant 'hijack': `reply.hijack()`
// and the head written on `reply.raw` by hand: Fastify's request and reply objects only.
// Listeners are shared functions, not closures per stream, as fastify-conduit's are.
import { PassThrough } from 'node:stream'
import Fastify from 'fastify'
import { LISTEN, SSE_HEADERS } from '../workload.mjs'

export async function start ({ variant }, hooks) {
  const app = Fastify({ logger: false })
  function flushHead () { this.flushHeaders() }
  function closed () { hooks.disconnected() }
  app.get('/sse', variant === 'hijack'
    ? (request, reply) => {
        reply.hijack()
        reply.raw.writeHead(200, SSE_HEADERS)
        reply.raw.flushHeaders()
        reply.raw.on('close', closed)
        hooks.connected()
      }
    : (request, reply) => {
        reply.raw.once('pipe', flushHead)
        reply.raw.on('close', closed)
        reply.headers(SSE_HEADERS).send(new PassThrough())
        hooks.connected()
      })
  await app.listen(LISTEN)
  return { port: app.server.address().port }
}
