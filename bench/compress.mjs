// node bench/compress.mjs [--quick]   (run.mjs runs it too; `npm run bench -- --only compress`)
//
// What the `compress` option buys and costs, on two streams shaped like real ones:
//   - AI tokens: OpenAI-style `chat.completion.chunk` events, one short word each;
//   - metrics: a dashboard's sample of a few counters and gauges per event.
// For each coding (none, gzip, br, deflate), against a fastify-conduit server in its own
// process, with a real client (node:http, decoded with node:zlib as it arrives):
//   - bytes: the body as it went over the socket, against the same body uncompressed;
//   - latency: from the moment the source yields an event to the moment the client has decoded
//     it (paced, as a model or a sampler would produce them), median and p99;
//   - throughput: an unpaced stream, events/s, and server CPU per event;
//   - memory: server RSS per idle stream that has sent one event (each holds its compressor).
import { fork } from 'node:child_process'
import { request } from 'node:http'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib'

const now = () => performance.timeOrigin + performance.now()
const WORDS = ('Server-sent events stream tokens as the model writes them: each chunk carries one word ' +
  'or part of one, wrapped in the same JSON envelope, so consecutive events differ in a few bytes ' +
  'and a compressor that keeps its window across flushes sends mostly back references').split(' ')

const tokenEvent = (n) => ({
  id: String(n),
  event: 'token',
  data: {
    id: 'chatcmpl-9x7Yk2LmQpR4sT6uV8wZ0aBcD',
    object: 'chat.completion.chunk',
    created: 1764547200,
    model: 'gpt-4o-mini-2024-07-18',
    system_fingerprint: 'fp_0ba0d124f1',
    choices: [{ index: 0, delta: { content: ' ' + WORDS[n % WORDS.length] }, logprobs: null, finish_reason: null }]
  }
})
const metricsEvent = (n) => ({
  id: String(n),
  event: 'metrics',
  data: {
    ts: 1764547200000 + n * 1000,
    host: `web-${n % 4}`,
    cpu: Math.round(Math.random() * 1000) / 10,
    memory: 512_000_000 + Math.floor(Math.random() * 64_000_000),
    requests: 1000 + Math.floor(Math.random() * 400),
    errors: Math.floor(Math.random() * 3),
    latency: { p50: Math.round(Math.random() * 400) / 10, p95: Math.round(Math.random() * 1500) / 10, p99: Math.round(Math.random() * 4000) / 10 },
    connections: 4000 + Math.floor(Math.random() * 200)
  }
})
const KINDS = { tokens: tokenEvent, metrics: metricsEvent }

// --- the server (a child process) ----------------------------------------------------------------

async function serve () {
  const { default: Fastify } = await import('fastify')
  const { default: fastifyConduit } = await import('fastify-conduit')
  const app = Fastify()
  await app.register(fastifyConduit, { heartbeat: false, compress: { encodings: ['gzip', 'br', 'deflate'] } })
  let sentAt = []
  app.get('/:kind', (request, reply) => {
    const make = KINDS[request.params.kind]
    const { n, pace } = { n: Number(request.query.n), pace: Number(request.query.pace) }
    sentAt = new Array(n)
    return reply.sse(async function * ({ signal }) {
      for (let i = 0; i < n; i++) {
        if (pace > 0) await new Promise((resolve) => setTimeout(resolve, pace))
        const event = make(i)
        sentAt[i] = now()
        yield event
      }
      // Idle streams (`n` events, then nothing) stay open until the client goes.
      if (request.query.hold === '1') await new Promise((resolve) => signal.addEventListener('abort', resolve))
    })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  process.send({ type: 'ready', port: app.server.address().port })
  process.on('message', (msg) => {
    if (msg.type === 'sentAt') process.send({ type: 'sentAt', sentAt })
    else if (msg.type === 'cpu') process.send({ type: 'cpu', cpu: process.cpuUsage() })
    else if (msg.type === 'memory') {
      globalThis.gc()
      process.send({ type: 'memory', rss: process.memoryUsage().rss, open: app.sse.stats().openStreams })
    } else if (msg.type === 'exit') app.close().then(() => process.exit(0))
  })
}

// --- the runner and client ----------------------------------------------------------------------

async function main () {
  const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false } } })
  const quick = args.quick
  const sizes = {
    tokens: { paced: quick ? 150 : 400, pace: 5, unpaced: quick ? 5_000 : 20_000 },
    metrics: { paced: quick ? 60 : 200, pace: 10, unpaced: quick ? 2_000 : 10_000 }
  }
  const idleStreams = quick ? 100 : 300
  const codings = ['identity', 'gzip', 'br', 'deflate']
  const rows = []
  for (const kind of Object.keys(KINDS)) {
    for (const coding of codings) {
      const server = await Server.start()
      try {
        const paced = await server.stream(kind, coding, sizes[kind].paced, sizes[kind].pace)
        const latencies = (await server.sentAt()).map((sent, i) => paced.receivedAt[i] - sent).sort((a, b) => a - b)
        const cpu0 = await server.cpu()
        const unpaced = await server.stream(kind, coding, sizes[kind].unpaced, 0)
        const cpu1 = await server.cpu()
        const cpuUs = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / sizes[kind].unpaced
        rows.push({
          kind,
          coding,
          bytesPerEvent: unpaced.wireBytes / sizes[kind].unpaced,
          ratio: unpaced.wireBytes / unpaced.textBytes,
          pacedBytesPerEvent: paced.wireBytes / sizes[kind].paced,
          pacedRatio: paced.wireBytes / paced.textBytes,
          latencyMedianMs: latencies[Math.floor(latencies.length / 2)],
          latencyP99Ms: latencies[Math.floor(latencies.length * 0.99)],
          eventsPerSecond: sizes[kind].unpaced / unpaced.seconds,
          serverCpuUsPerEvent: cpuUs
        })
      } finally {
        await server.stop()
      }
    }
  }
  const memory = []
  for (const coding of codings) {
    const server = await Server.start()
    try {
      memory.push({ coding, bytesPerStream: await server.idle(coding, idleStreams) })
    } finally {
      await server.stop()
    }
  }
  const markdown = report(rows, memory, sizes, idleStreams)
  console.log(markdown)
  const results = join(import.meta.dirname, 'results')
  mkdirSync(results, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  writeFileSync(join(results, `compress-${quick ? 'quick' : 'full'}-${stamp}.json`), JSON.stringify({ date: new Date().toISOString(), sizes, rows, memory }, null, 2) + '\n')
}

class Server {
  #child
  #port
  #waiting = new Map()

  static async start () {
    const server = new Server()
    server.#child = fork(import.meta.filename, ['server'], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    server.#child.on('message', (msg) => {
      const waiter = server.#waiting.get(msg.type)
      server.#waiting.delete(msg.type)
      waiter?.(msg)
    })
    server.#port = (await server.#next('ready')).port
    return server
  }

  #next (type) {
    return new Promise((resolve) => this.#waiting.set(type, resolve))
  }

  async #ask (type) {
    const answer = this.#next(type)
    this.#child.send({ type })
    return answer
  }

  async sentAt () { return (await this.#ask('sentAt')).sentAt }
  async cpu () { return (await this.#ask('cpu')).cpu }

  async stop () {
    const exited = new Promise((resolve) => this.#child.once('exit', resolve))
    this.#child.send({ type: 'exit' })
    await exited
  }

  /** Reads one stream to its end: wire bytes, decoded bytes, when each event was decoded. */
  stream (kind, coding, n, pace) {
    return new Promise((resolve, reject) => {
      const headers = coding === 'identity' ? {} : { 'accept-encoding': coding }
      const started = now()
      const req = request({ host: '127.0.0.1', port: this.#port, path: `/${kind}?n=${n}&pace=${pace}`, headers }, (res) => {
        if (res.headers['content-encoding'] !== (coding === 'identity' ? undefined : coding)) reject(new Error(`asked for ${coding}, got ${res.headers['content-encoding']}`))
        let wireBytes = 0
        let textBytes = 0
        let pending = ''
        const receivedAt = []
        res.on('data', (chunk) => { wireBytes += chunk.length })
        const body = coding === 'identity' ? res : res.pipe(decoder(coding))
        body.setEncoding('utf8')
        body.on('data', (text) => {
          const at = now()
          textBytes += Buffer.byteLength(text)
          pending += text
          let start = 0
          let end
          while ((end = pending.indexOf('\n\n', start)) !== -1) {
            receivedAt.push(at)
            start = end + 2
          }
          pending = pending.slice(start)
        })
        body.on('end', () => {
          if (receivedAt.length !== n) reject(new Error(`${kind} ${coding}: ${receivedAt.length} of ${n} events`))
          else resolve({ wireBytes, textBytes, receivedAt, seconds: (now() - started) / 1000 })
        })
      })
      req.on('error', reject)
      req.end()
    })
  }

  /** Server RSS per idle stream that has sent one event, `count` of them, after GC. */
  async idle (coding, count) {
    const before = await this.#ask('memory')
    const headers = coding === 'identity' ? {} : { 'accept-encoding': coding }
    const requests = []
    await Promise.all(Array.from({ length: count }, () => new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: this.#port, path: '/tokens?n=1&pace=0&hold=1', headers, agent: false }, (res) => {
        res.once('data', resolve)
      })
      req.on('error', reject)
      req.end()
      requests.push(req)
    })))
    const after = await this.#ask('memory')
    for (const req of requests) req.destroy()
    if (after.open !== count) throw new Error(`${after.open} of ${count} idle streams open`)
    return (after.rss - before.rss) / count
  }
}

function decoder (coding) {
  return coding === 'gzip' ? createGunzip() : coding === 'br' ? createBrotliDecompress() : createInflate()
}

function report (rows, memory, sizes, idleStreams) {
  const f = (x, digits = 1) => x.toFixed(digits)
  const lines = [
    `### Compression (\`compress\` option): ${Object.entries(sizes).map(([kind, s]) => `${kind} ${s.paced} events paced every ${s.pace} ms and ${s.unpaced} unpaced`).join('; ')}`,
    '',
    '| stream | coding | bytes/event (unpaced) | of uncompressed | bytes/event (paced) | of uncompressed | latency median / p99 (ms) | events/s unpaced | server CPU µs/event |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'
  ]
  for (const r of rows) {
    lines.push(`| ${r.kind} | ${r.coding} | ${f(r.bytesPerEvent)} | ${f(r.ratio * 100)}% | ${f(r.pacedBytesPerEvent)} | ${f(r.pacedRatio * 100)}% | ${f(r.latencyMedianMs, 2)} / ${f(r.latencyP99Ms, 2)} | ${Math.round(r.eventsPerSecond).toLocaleString('en-US')} | ${f(r.serverCpuUsPerEvent)} |`)
  }
  lines.push('', `Server memory per idle stream (RSS after GC, ${idleStreams} streams that sent one event): ` +
    memory.map((m) => `${m.coding} ${f(m.bytesPerStream / 1024, 0)} KiB`).join(', '))
  return lines.join('\n')
}

// Last: Server (a class) must be initialized before main() uses it.
if (process.argv[2] === 'server') await serve()
else await main()
