// Micro-benchmark of the formatting hot paths: formatEvent, a compiled schema.sse formatter,
// and a channel's publish and fan-out on memoryBus. CPU nanoseconds per event over rounds.
//
//   npm run build && node bench/wire-micro.mjs                  # this build (dist/)
//   node bench/wire-micro.mjs /tmp/old-dist/esm/index.js         # also another build
//
// Give a second build (e.g. a copy of dist/ from before a change, kept inside this checkout so
// that it finds node_modules) to compare the two. Every measurement runs one case of one build
// in a fresh process (two builds in one process would share call sites and skew each other);
// the builds run back to back on each case, alternating which goes first, so machine noise
// hits both alike.
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'

// More rounds give steadier minimums on a busy machine: ROUNDS=21 node bench/wire-micro.mjs …
const ROUNDS = Number(process.env.ROUNDS ?? 9)
const TARGET_MS = 200

const Tick = Type.Object({ i: Type.Integer(), text: Type.String() })
const text = 'hello world'
const kilobyte = 'x'.repeat(1024)

async function cases (mod) {
  const { formatEvent, compileRouteEvents, default: fastifyConduit } = mod
  const tick = compileRouteEvents({ tick: Tick })
  const big = compileRouteEvents({ big: Type.Object({ text: Type.String() }) })
  const kAttach = Symbol.for('fastify-conduit.attach')
  const app = Fastify({ logger: false })
  await app.register(fastifyConduit, { heartbeat: false })
  await app.ready()
  const plain = app.sse.channel('plain')
  const typed = app.sse.channel('typed', { schema: { tick: Tick } })
  // 100 streams that take what they are given: the fan-out path as far as the socket.
  const fanout = app.sse.channel('fanout', { schema: { tick: Tick } })
  let written = 0
  for (let n = 0; n < 100; n++) {
    fanout[kAttach]({
      lastEventId: undefined,
      ended: false,
      queued: 0,
      onEnd () {},
      writeFrame () { written++; return true },
      writeBytes () { written++; return true },
      stop () {},
      abort () {}
    })
  }
  await new Promise((resolve) => setImmediate(resolve))
  return {
    'formatEvent, string': { sync: (i) => formatEvent({ event: 'tick', id: i, data: text }) },
    'formatEvent, object': { sync: (i) => formatEvent({ event: 'tick', id: i, data: { i, text } }) },
    'formatEvent, 1 KiB string': { sync: (i) => formatEvent({ id: i, data: kilobyte }) },
    'schema, Tick': { sync: (i) => tick({ event: 'tick', id: i, data: { i, text } }) },
    'schema, 1 KiB string property': { sync: (i) => big({ event: 'big', id: i, data: { text: kilobyte } }) },
    'channel publish, no schema, string': { async: () => plain.publish({ data: text }) },
    'channel publish, no schema, object': { async: (i) => plain.publish({ data: { i, text } }) },
    'channel publish, schema': { async: (i) => typed.publish({ event: 'tick', data: { i, text } }) },
    'channel publish + flush to 100 streams (per event)': {
      batch: async (n) => {
        for (let i = 0; i < n; i++) fanout.publish({ event: 'tick', data: { i, text } })
        await new Promise((resolve) => setImmediate(resolve))
      },
      written: () => written
    }
  }
}

// CPU time of this process rather than wall time: on a shared machine, time spent waiting for
// a core is not counted (caches and clock speed still move results by a few percent).
function cpuMicros () {
  const { user, system } = process.cpuUsage()
  return user + system
}

let sink = 0
async function measure (run) {
  // Calibrate a count that takes about TARGET_MS, then time it.
  let count = 1000
  for (;;) {
    const start = cpuMicros()
    await runCount(run, count)
    const ms = (cpuMicros() - start) / 1e3
    if (ms > TARGET_MS / 4) {
      count = Math.max(1000, Math.round(count * TARGET_MS / ms))
      break
    }
    count *= 4
  }
  const start = cpuMicros()
  await runCount(run, count)
  return (cpuMicros() - start) * 1e3 / count
}

async function runCount (run, count) {
  if (run.sync !== undefined) {
    // As a stream writes: frames joined into ~32 KiB batches, each made a Buffer (which
    // flattens the joined string), so that work moved earlier or later is counted alike.
    let batch = ''
    for (let i = 0; i < count; i++) {
      batch += run.sync(i)
      if (batch.length >= 32 * 1024) {
        sink += Buffer.from(batch).length
        batch = ''
      }
    }
    sink += Buffer.from(batch).length
  } else if (run.async !== undefined) {
    for (let i = 0; i < count; i++) sink += (await run.async(i)).length
  } else {
    // A batch per event-loop turn, as a broadcast publishes them.
    for (let done = 0; done < count; done += 100) await run.batch(100)
    sink += run.written()
  }
}

if (process.argv[2] === '--child') {
  // One case on one build, the best of a few windows; the parent collects the numbers.
  const run = (await cases(await import(process.argv[3])))[process.argv[4]]
  let best = Infinity
  for (let window = 0; window < 3; window++) best = Math.min(best, await measure(run))
  if (sink === 0) throw new Error('nothing measured')
  process.stdout.write(JSON.stringify(best))
  process.exit(0)
}

const builds = [{ label: 'this build', specifier: 'fastify-conduit' }]
if (process.argv[2] !== undefined) builds.push({ label: process.argv[2], specifier: process.argv[2] })
// The case names, from a build loaded here (its app is left to exit with this process).
const names = Object.keys(await cases(await import(builds[0].specifier)))
const results = builds.map(() => Object.fromEntries(names.map((name) => [name, []])))
for (let round = 0; round < ROUNDS; round++) {
  for (const name of names) {
    // The builds one after the other on the same case, so a load that comes and goes over
    // seconds hits both alike; which goes first alternates.
    for (let b = 0; b < builds.length; b++) {
      const index = (b + round) % builds.length
      const output = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', builds[index].specifier, name], { encoding: 'utf8' })
      results[index][name].push(JSON.parse(output))
    }
  }
}

// The minimum is the least disturbed round (a busy machine only ever adds time); the median
// is given beside it.
const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)]
const header = ['case (ns/event, min / median)', ...builds.map((build) => build.label)]
if (builds.length === 2) header.push('ratio (min / median)')
console.log('| ' + header.join(' | ') + ' |')
console.log('| ' + header.map((h, i) => i === 0 ? '---' : '---:').join(' | ') + ' |')
for (const name of names) {
  const rounds = results.map((result) => result[name])
  const minimums = rounds.map((values) => Math.min(...values))
  const medians = rounds.map(median)
  const row = [name, ...rounds.map((values, b) => `${minimums[b].toFixed(0)} / ${medians[b].toFixed(0)}`)]
  if (builds.length === 2) row.push(`${(minimums[0] / minimums[1]).toFixed(3)} / ${(medians[0] / medians[1]).toFixed(3)}`)
  console.log('| ' + row.join(' | ') + ' |')
}
process.exit(0)
