// @fastify/sse: `reply.sse.send(asyncIterable)` for a stream. It has no broadcast facility, so a
// broadcast keeps every connection's `reply.sse` (after `keepAlive()`) and sends each event to
// each of them, waiting for all the sends (which honour 'drain') before the next event. Its
// replay facility is `reply.sse.replay(callback)`, handing the Last-Event-ID to the application,
// which keeps the history: with a `history` (the reconnect storm), an array of the events, sent
// after the given id as an async iterable before the connection joins the live ones.
import Fastify from 'fastify'
import fastifySse from '@fastify/sse'
import { asyncTicks, LISTEN, stormTick, tickFrame } from '../workload.mjs'

const ROUTE = { sse: { kind: 'only', heartbeat: false } }

export async function start ({ scenario, history = 0 }, hooks) {
  const app = Fastify({ logger: false })
  await app.register(fastifySse, { heartbeatInterval: 0 })
  const contexts = new Set()
  const events = Array.from({ length: history }, (_, i) => ({ ...stormTick(i), id: String(i + 1) }))

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
      await sse.replay(async (lastEventId) => { await sse.send(after(events, Number(lastEventId))) })
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
    historyIds: events.map((msg) => msg.id),
    historyBytes: events.reduce((sum, msg) => sum + Buffer.byteLength(tickFrame(msg)), 0),
    publish (msg) {
      const sends = []
      for (const sse of contexts) sends.push(sse.send(msg))
      return Promise.all(sends)
    }
  }
}

/** The events of `events` (ids 1..n) after the id `last`. */
async function * after (events, last) {
  for (let i = last; i < events.length; i++) yield events[i]
}
