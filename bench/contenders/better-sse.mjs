// better-sse: a Session per connection (on the hijacked reply), `session.push(data, event, id)`
// per event; a broadcast uses its Channel. push() writes at once and never waits for 'drain'.
import Fastify from 'fastify'
import { createChannel, createSession } from 'better-sse'
import { asyncTicks, LISTEN } from '../workload.mjs'

const SESSION = { keepAlive: null, retry: null }

export async function start ({ scenario }, hooks) {
  const app = Fastify({ logger: false })
  const channel = createChannel()

  if (scenario === 'stream') {
    app.get('/sse', async (request, reply) => {
      reply.hijack()
      const session = await createSession(request.raw, reply.raw, SESSION)
      for await (const msg of asyncTicks(Number(request.query.n))) session.push(msg.data, msg.event, String(msg.id))
      reply.raw.end()
    })
  } else {
    app.get('/sse', async (request, reply) => {
      reply.hijack()
      const session = await createSession(request.raw, reply.raw, SESSION)
      channel.register(session)
      hooks.connected()
      session.once('disconnected', hooks.disconnected)
    })
  }

  await app.listen(LISTEN)
  return {
    port: app.server.address().port,
    publish (msg) {
      channel.broadcast(msg.data, msg.event, { eventId: String(msg.id) })
    }
  }
}
