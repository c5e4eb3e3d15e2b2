// @fastify/sse: `reply.sse.send(asyncIterable)` for a stream. It has no broadcast facility, so a
// broadcast keeps every connection's `reply.sse` (after `keepAlive()`) and sends each event to
// each of them, waiting for all the sends (which honour 'drain') before the next event.
import Fastify from 'fastify'
import fastifySse from '@fastify/sse'
import { asyncTicks, LISTEN } from '../workload.mjs'

const ROUTE = { sse: { kind: 'only', heartbeat: false } }

export async function start ({ scenario }, hooks) {
  const app = Fastify({ logger: false })
  await app.register(fastifySse, { heartbeatInterval: 0 })
  const contexts = new Set()

  if (scenario === 'stream') {
    app.get('/sse', ROUTE, async (request, reply) => {
      await reply.sse.send(asyncTicks(Number(request.query.n)))
    })
  } else {
    app.get('/sse', ROUTE, async (request, reply) => {
      const sse = reply.sse
      sse.keepAlive()
      // Headers are written lazily on the first send; a subscriber with nothing to receive yet
      // gets them now, like every other contender.
      sse.sendHeaders()
      reply.raw.flushHeaders()
      contexts.add(sse)
      hooks.connected()
      sse.onClose(() => {
        contexts.delete(sse)
        hooks.disconnected()
      })
    })
  }

  await app.listen(LISTEN)
  return {
    port: app.server.address().port,
    publish (msg) {
      const sends = []
      for (const sse of contexts) sends.push(sse.send(msg))
      return Promise.all(sends)
    }
  }
}
