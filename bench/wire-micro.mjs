// Micro-benchmark of the formatting hot paths: formatEvent, a compiled schema.sse formatter,
// and a channel's publish and fan-out on memoryBus. Nanoseconds per event, median of rounds.
//
//   npm run build && node bench/wire-micro.mjs                  # this build (dist/)
//   node bench/wire-micro.mjs /tmp/old-dist/esm/index.js         # also another build, rounds alternated
//
// Give a second build (e.g. a copy of dist/ from before a change) to compare the two in one
// run: rounds alternate between them, so machine noise hits both alike.
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'

const ROUNDS = 7
const TARGET_MS = 300

const builds = [{ label: 'this build', specifier: 'fastify-conduit' }]
if (process.argv[2] !== undefined) builds.push({ label: process.argv[2], specifier: process.argv[2] })

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
      check: () => written
    }
  }
}

let sink = 0
async function measure (run) {
  // Calibrate a count that takes about TARGET_MS, then time it.
  let count = 1000
  for (;;) {
    const start = process.hrtime.bigint()
    await runCount(run, count)
    const ms = Number(process.hrtime.bigint() - start) / 1e6
    if (ms > TARGET_MS / 4) {
      count = Math.max(1000, Math.round(count * TARGET_MS / ms))
      break
    }
    count *= 4
  }
  const start = process.hrtime.bigint()
  await runCount(run, count)
  return Number(process.hrtime.bigint() - start) / count
}

async function runCount (run, count) {
  if (run.sync !== undefined) {
    for (let i = 0; i < count; i++) sink += run.sync(i).length
  } else if (run.async !== undefined) {
    for (let i = 0; i < count; i++) sink += (await run.async(i)).length
  } else {
    // A batch per event-loop turn, as a broadcast publishes them.
    for (let done = 0; done < count; done += 100) await run.batch(100)
  }
}

const loaded = []
for (const build of builds) loaded.push({ ...build, cases: await cases(await import(build.specifier)) })
const names = Object.keys(loaded[0].cases)
const results = new Map(names.map((name) => [name, loaded.map(() => [])]))
for (let round = 0; round < ROUNDS; round++) {
  for (const name of names) {
    for (let b = 0; b < loaded.length; b++) {
      // Alternate which build goes first, round by round.
      const index = (b + round) % loaded.length
      results.get(name)[index].push(await measure(loaded[index].cases[name]))
    }
  }
}
const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)]
const header = ['case', ...loaded.map((build) => `${build.label} (ns/event)`)]
if (loaded.length === 2) header.push('ratio')
console.log('| ' + header.join(' | ') + ' |')
console.log('| ' + header.map((h, i) => i === 0 ? '---' : '---:').join(' | ') + ' |')
for (const name of names) {
  const medians = results.get(name).map(median)
  const row = [name, ...medians.map((ns) => ns.toFixed(1))]
  if (medians.length === 2) row.push((medians[0] / medians[1]).toFixed(3))
  console.log('| ' + row.join(' | ') + ' |')
}
if (sink === 0) console.log('(nothing measured)')
process.exit(0)
