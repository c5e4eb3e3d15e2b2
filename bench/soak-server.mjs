// The server of `npm run soak`'s mixed run: the built package, a broadcast channel, a resumable
// answer and plain streams. Every second it reports over IPC what it holds: memory, event-loop
// delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution) and open handles by kind.
import Fastify from 'fastify'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import fastifyConduit from 'fastify-conduit'

const app = Fastify({ forceCloseConnections: true })
await app.register(fastifyConduit, { heartbeat: 5000, maxConnections: 50_000 })
const news = app.sse.channel('news', { history: 2000 })
app.get('/news', (request, reply) => reply.sse(news))
app.get('/plain', (request, reply) => reply.sse(async function * ({ signal }) {
  for (let n = 0; !signal.aborted; n++) {
    yield { id: n, event: 'tick', data: { n, text: 'x'.repeat(n % 512) } }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}))
let answers = 0
app.get('/answer', (request, reply) => reply.sse(async function * () {
  for (let n = 0; n < 200; n++) {
    yield { event: 'token', data: `token ${n} ` }
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}, { resume: { key: `answer-${Math.floor(answers++ / 50)}`, ttl: 60_000 } }))
await app.listen({ host: '127.0.0.1', port: 0 })

const delay = monitorEventLoopDelay({ resolution: 1 })
delay.enable()
let publishing = true
let published = 0
// A steady publisher: 200 events/s in bursts of 10.
const publisher = setInterval(async () => {
  if (!publishing) return
  await Promise.all(Array.from({ length: 10 }, () => news.publish({ event: 'headline', data: { n: published++ } })))
}, 50)
const sampler = setInterval(() => {
  const memory = process.memoryUsage()
  const handles = {}
  for (const kind of process.getActiveResourcesInfo()) handles[kind] = (handles[kind] ?? 0) + 1
  process.send({
    type: 'sample',
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    arrayBuffers: memory.arrayBuffers,
    delay: { p50: delay.percentile(50) / 1e6, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 },
    handles,
    stats: app.sse.stats(),
    published
  })
  delay.reset()
}, 1000)
process.on('message', async (message) => {
  if (message.type === 'stop') {
    publishing = false
    clearInterval(publisher)
    const started = Date.now()
    await app.close()
    clearInterval(sampler)
    process.send({ type: 'closed', closeMs: Date.now() - started, stats: app.sse.stats() }, () => process.exit(0))
  }
})
process.send({ type: 'ready', port: app.server.address().port })
