// The two streams of the classic SSE demo: a clock on /time and a counter from 1 to 10 on
// /count. Run it with `npx tsx example/simple-server.ts`, then open http://127.0.0.1:3000 or
// `curl -N http://127.0.0.1:3000/count`.
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import fastifyConduit from 'fastify-conduit'
import { setTimeout as sleep } from 'node:timers/promises'

const Time = Type.Object({ iso: Type.String(), epoch: Type.Integer() })
const Counter = Type.Object({ value: Type.Integer({ minimum: 1, maximum: 10 }) })
const LAST = 10

export interface SimpleServerOptions {
  /** Milliseconds between two events of either stream. Default 1000. */
  interval?: number
}

/** GET /time (event `time`, every second until the client leaves) and GET /count (event `counter`, 1..10). */
export const simpleServer: FastifyPluginAsync<SimpleServerOptions> = async (app, { interval = 1000 }) => {
  app.get('/time', { schema: { sse: { time: Time } } }, (request, reply) =>
    reply.sse(async function * ({ signal }) {
      while (true) {
        const now = new Date()
        yield { event: 'time', id: now.getTime(), data: { iso: now.toISOString(), epoch: now.getTime() } }
        await sleep(interval, undefined, { signal })
      }
    }))

  app.get('/count', { schema: { sse: { counter: Counter } } }, (request, reply) => {
    // Each event's id is its value: a client that reconnects (after a network drop or a server
    // restart) sends the last one it saw in Last-Event-ID, and counting resumes right after it.
    const after = Number.parseInt(String(request.headers['last-event-id']), 10)
    const from = Number.isSafeInteger(after) && after > 0 ? after + 1 : 1
    // Finished: 204 is the one answer that makes EventSource stop reconnecting.
    if (from > LAST) return reply.code(204).send()
    return reply.sse(async function * ({ signal }) {
      for (let value = from; value <= LAST; value++) {
        if (value > from) await sleep(interval, undefined, { signal })
        yield { event: 'counter', id: value, data: { value } }
      }
    })
  })
}

const page = `<!doctype html>
<meta charset="utf-8">
<title>SSE demo</title>
<h1>Server-Sent Events demo</h1>
<p><a href="/time">/time</a> · <a href="/count">/count</a></p>
<div id="time-output"></div>
<div id="counter-output"></div>
<script>
  // With a schema on the route, data is JSON.
  new EventSource('/time').addEventListener('time', (e) => {
    document.getElementById('time-output').textContent = 'Current time: ' + JSON.parse(e.data).iso
  })
  new EventSource('/count').addEventListener('counter', (e) => {
    document.getElementById('counter-output').innerHTML += JSON.parse(e.data).value + '<br>'
  })
</script>
`

if (import.meta.filename === process.argv[1]) {
  const app = Fastify({ logger: true })
  await app.register(fastifyConduit)
  await app.register(simpleServer)
  app.get('/', (request, reply) => reply.type('text/html').send(page))
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
