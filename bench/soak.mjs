// `npm run soak`: bounded (a few minutes by default), the reliability figures of the README's
// "Guarantees" section. Two parts:
//
// 1. The proof tests at full size (CONDUIT_SOAK=1): wire fuzzing with 10,000 messages by
//    default (all paths together; --fuzz-messages 100000 for the full proof), 10,000 connect/disconnect cycles, 10,000 hostile requests, 5,000
//    non-reading subscribers, 1,000 readers of one record, app.close() with 10,000 streams.
//    Each runs in its own process and records what it measured.
// 2. A mixed run against the built package in a server process: thousands of connections with
//    churn (clients leaving and new ones arriving), a broadcast at 200 events/s, resumable
//    answers and reconnects with Last-Event-ID; every second the server reports memory,
//    event-loop delay and open handles, printed as they come.
//
// Writes bench/results/soak-<date>.json and .md. Flags: --minutes <n> (mixed run, default 2),
// --connections <n> (default 3000), --only proofs|mixed, --skip <proof name,...>,
// --fuzz-messages <n> (default 10000; 100000 is the issue's full proof: about 4 min on a quiet
// machine, 30 on a loaded one).
import { execFileSync, fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { cpus, totalmem, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const root = join(import.meta.dirname, '..')
const { values: flags } = parseArgs({
  options: {
    minutes: { type: 'string', default: '2' },
    connections: { type: 'string', default: '3000' },
    only: { type: 'string' },
    skip: { type: 'string', default: '' },
    'fuzz-messages': { type: 'string', default: '10000' }
  }
})
const PROOFS = {
  'wire-fuzz': 'test/wire/clients-fuzz.test.ts',
  churn: 'test/stream/churn.test.ts',
  hostile: 'test/compat/hostile.test.ts',
  crowd: 'test/channel/crowd.test.ts',
  'resume-readers': 'test/resume/readers.test.ts',
  'close-many': 'test/compat/close-many.test.ts'
}
const startedAt = new Date()
const results = { date: startedAt.toISOString(), commit: git('rev-parse', '--short', 'HEAD'), machine: machine(), proofs: {}, mixed: undefined }

if (flags.only !== 'mixed') {
  const skip = new Set(flags.skip.split(',').filter(Boolean))
  for (const [name, file] of Object.entries(PROOFS)) {
    if (skip.has(name)) continue
    results.proofs[name] = await proof(name, file)
  }
}
if (flags.only !== 'proofs') results.mixed = await mixed(Number(flags.minutes) * 60_000, Number(flags.connections))

mkdirSync(join(root, 'bench', 'results'), { recursive: true })
const base = join(root, 'bench', 'results', `soak-${startedAt.toISOString().replace(/[:.]/g, '-')}`)
writeFileSync(base + '.json', JSON.stringify(results, null, 2) + '\n')
writeFileSync(base + '.md', markdown(results))
console.log(`\nwrote ${base}.json and .md`)
const failed = Object.entries(results.proofs).filter(([, r]) => !r.ok).map(([name]) => name)
if (failed.length > 0) console.log(`FAILED: ${failed.join(', ')}`)
process.exit(failed.length > 0 ? 1 : 0)

/** Runs one proof test file at soak size; its figures come back through a results file. */
async function proof (name, file) {
  const out = join(tmpdir(), `conduit-soak-${process.pid}-${name}.jsonl`)
  rmSync(out, { force: true })
  console.log(`\n== ${name} (${file})`)
  const started = Date.now()
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    // TAP_TIMEOUT=0: run outside the tap runner, a file would otherwise be stopped after 30 s.
    env: { ...process.env, CONDUIT_SOAK: '1', CONDUIT_SOAK_RESULTS: out, TAP_TIMEOUT: '0', CONDUIT_FUZZ_MESSAGES: flags['fuzz-messages'] },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let tap = ''
  child.stdout.on('data', (chunk) => { tap += chunk })
  const [code] = await once(child, 'exit')
  const failures = tap.split('\n').filter((line) => /^\s*not ok/.test(line))
  const figures = readFileSync(out, { encoding: 'utf8', flag: 'a+' }).split('\n').filter(Boolean).map((line) => JSON.parse(line))
  rmSync(out, { force: true })
  const result = { ok: code === 0 && failures.length === 0, seconds: Math.round((Date.now() - started) / 1000), failures, figures }
  console.log(JSON.stringify(result, null, 2))
  return result
}

/** The mixed run: a server process, and clients here that come, read, leave and resume. */
async function mixed (ms, connections) {
  console.log(`\n== mixed: ${connections} connections for ${ms / 60_000} min`)
  const server = fork(join(root, 'bench', 'soak-server.mjs'), [], { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const samples = []
  let ready
  const readyPort = new Promise((resolve) => { ready = resolve })
  let closed
  const closedReport = new Promise((resolve) => { closed = resolve })
  server.on('message', (message) => {
    if (message.type === 'ready') ready(message.port)
    if (message.type === 'closed') closed(message)
    if (message.type !== 'sample') return
    samples.push({ t: Math.round((Date.now() - start) / 1000), ...message, type: undefined })
    const { rss, heapUsed, delay, handles, stats } = message
    console.log(`${String(samples.at(-1).t).padStart(4)} s  rss ${mb(rss)}  heap ${mb(heapUsed)}  loop delay p99 ${delay.p99.toFixed(1)} ms max ${delay.max.toFixed(1)} ms  open ${stats.openStreams}  handles ${JSON.stringify(handles)}  sent ${stats.sentEvents}  slow ${stats.slowDisconnects}`)
  })
  const port = await readyPort
  const start = Date.now()
  const counts = { opened: 0, left: 0, resumed: 0, events: 0, errors: 0, halfOpenAfter2s: 0 }
  const paths = ['/news', '/news', '/plain', '/answer']
  const deadline = start + ms
  // Each client: opens a stream, reads for a random while (0.5–10 s), leaves (destroy or end),
  // and one in three comes back with the last id it saw (a reconnect with Last-Event-ID).
  const client = async (n) => {
    let lastEventId
    while (Date.now() < deadline) {
      const path = paths[n % paths.length]
      lastEventId = await session(port, path, Math.random() < 0.33 ? lastEventId : undefined, 500 + Math.random() * 9500, counts)
      if (lastEventId !== undefined) counts.resumed++
      n++
    }
  }
  const ramp = []
  for (let i = 0; i < connections; i++) {
    ramp.push(client(i))
    if (i % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  await Promise.all(ramp)
  // Idle for a few seconds, every client gone: what is left held.
  await new Promise((resolve) => setTimeout(resolve, 5000))
  server.send({ type: 'stop' })
  const report = await closedReport
  const last = samples.at(-1)
  return {
    connections,
    minutes: ms / 60_000,
    counts,
    closeMs: report.closeMs,
    final: report.stats,
    peakRss: Math.max(...samples.map((s) => s.rss)),
    peakHeapUsed: Math.max(...samples.map((s) => s.heapUsed)),
    idleAfter: { rss: last.rss, heapUsed: last.heapUsed, handles: last.handles, openStreams: last.stats.openStreams },
    delayP99Max: Math.max(...samples.map((s) => s.delay.p99)),
    delayMax: Math.max(...samples.map((s) => s.delay.max)),
    samples
  }
}

/** One client session on a raw socket: reads events for `ms`, then leaves; returns the last id. */
function session (port, path, lastEventId, ms, counts) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    counts.opened++
    let last = lastEventId
    let tail = ''
    socket.on('error', () => { counts.errors++ })
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n${lastEventId === undefined ? '' : `Last-Event-ID: ${lastEventId}\r\n`}\r\n`)
    socket.on('data', (chunk) => {
      const text = tail + chunk.toString('utf8')
      const frames = text.split('\n\n')
      tail = frames.pop()
      for (const frame of frames) {
        const id = /^id: (.*)$/m.exec(frame)
        if (id !== null) last = id[1]
        if (frame.includes('data:')) counts.events++
      }
    })
    let forced
    const timer = setTimeout(() => {
      counts.left++
      if (Math.random() < 0.5) return socket.destroy()
      socket.end()
      // A half-closed connection the server has not closed 2 s later is counted, then dropped.
      forced = setTimeout(() => { counts.halfOpenAfter2s++; socket.destroy() }, 2000)
    }, ms)
    socket.on('close', () => {
      clearTimeout(timer)
      clearTimeout(forced)
      resolve(last)
    })
  })
}

function mb (bytes) {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}

function git (...args) {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}

function machine () {
  return `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GB; ${process.platform} ${process.arch}; Node ${process.version}`
}

function markdown (r) {
  const lines = [`# Soak ${r.date}`, '', `Commit ${r.commit}; ${r.machine}.`, '', '| proof | ok | seconds | figures |', '| --- | --- | ---: | --- |']
  for (const [name, p] of Object.entries(r.proofs)) lines.push(`| ${name} | ${p.ok ? 'yes' : '**no**'} | ${p.seconds} | \`${JSON.stringify(p.figures).replace(/\|/g, '\\|')}\` |`)
  if (r.mixed !== undefined) {
    const m = r.mixed
    lines.push('', `Mixed run: ${m.connections} connections for ${m.minutes} min: ${m.counts.opened} sessions opened, ${m.counts.resumed} resumed with Last-Event-ID, ${m.counts.events} events read.`,
      `Peak RSS ${mb(m.peakRss)}, peak heap ${mb(m.peakHeapUsed)}; event-loop delay: worst p99 of a second ${m.delayP99Max.toFixed(1)} ms, max ${m.delayMax.toFixed(1)} ms.`,
      `Idle after the run: ${m.idleAfter.openStreams} streams open, heap ${mb(m.idleAfter.heapUsed)}, handles ${JSON.stringify(m.idleAfter.handles)}; app.close() took ${m.closeMs} ms.`)
  }
  return lines.join('\n') + '\n'
}
