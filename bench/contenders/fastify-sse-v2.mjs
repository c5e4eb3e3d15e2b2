// fastify-sse-v2: `reply.sse(asyncIterable)`, data as strings (it writes `data` verbatim). A
// broadcast follows its README: each connection iterates `events.on(emitter, ...)`, and a
// publish serializes the event once and emits it.
import { EventEmitter, on } from 'node:events'
import Fastify from 'fastify'
import { FastifySSEPlugin } from 'fastify-sse-v2'
import { asyncTicks, LISTEN } from '../workload.mjs'

export async function start ({ scenario }, hooks) {
  const app = Fastify({ logger: false })
  await app.register(FastifySSEPlugin, { retryDelay: false })
  const emitter = new EventEmitter()
  emitter.setMaxListeners(0)

  if (scenario === 'stream') {
    app.get('/sse', (request, reply) => {
      reply.sse(stringTicks(Number(request.query.n)))
    })
  } else {
    app.get('/sse', (request, reply) => {
      const ac = new AbortController()
      request.raw.on('close', () => {
        ac.abort()
        hooks.disconnected()
      })
      reply.sse(subscribe(emitter, ac.signal))
      hooks.connected()
    })
  }

  await app.listen(LISTEN)
  return {
    port: app.server.address().port,
    publish (msg) {
      emitter.emit('tick', { event: msg.event, id: String(msg.id), data: JSON.stringify(msg.data) })
    }
  }
}

async function * stringTicks (count) {
  for await (const msg of asyncTicks(count)) yield { event: msg.event, id: String(msg.id), data: JSON.stringify(msg.data) }
}

async function * subscribe (emitter, signal) {
  try {
    for await (const [msg] of on(emitter, 'tick', { signal })) yield msg
  } catch (err) {
    if (err.name !== 'AbortError') throw err
  }
}
