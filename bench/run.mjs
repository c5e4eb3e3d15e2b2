// npm run bench [-- --quick] [-- --markdown] [-- --runs 5] [-- --only stream-1m,idle,parser]
//   [-- --contenders conduit,raw-coalesced] [-- --cpu-prof] [-- --compare ../other-checkout]
//   [-- --streams 19000] (idle-100k's stream count, where the file limit cannot be raised)
//
// Runs every contender through every scenario, each server and the load client in their own
// process, contenders alternated run by run; prints markdown tables (medians and min–max over
// the runs, ratios to the hand-tuned node:http baseline) and writes the full results as JSON
// to bench/results/. See bench/README.md.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Child, openFilesLimit, raiseableFiles } from './processes.mjs'
import { kilobytes, megabytes, ratio, si, summarize, table } from './report.mjs'

const BENCH = import.meta.dirname
const ROOT = join(BENCH, '..')
const SERVER = join(BENCH, 'server.mjs')
const CLIENT = join(BENCH, 'client.mjs')
const H2_CLIENT = join(BENCH, 'h2-client.mjs')
const PARSER = join(BENCH, 'parser.mjs')
const RESULTS = join(BENCH, 'results')

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    markdown: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string' },
    contenders: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    compare: { type: 'string' },
    'cpu-prof-client': { type: 'boolean', default: false },
    streams: { type: 'string' }
  }
})

/** Every contender; `baseline` is what ratios are relative to. */
const CONTENDERS = [
  { id: 'raw-coalesced', module: 'raw-coalesced', label: 'node:http coalesced' },
  { id: 'raw-per-event', module: 'raw-coalesced', variant: 'per-event', label: 'node:http, one Buffer per event', only: ['broadcast'] },
  { id: 'raw-naive', module: 'raw-naive', label: 'node:http naive' },
  // HTTP/2 (h2c): the baseline of the idle-100k-h2 scenario, one shared heartbeat Buffer written
  // to every stream, and fastify-conduit on Fastify({ http2: true }).
  { id: 'raw-h2', module: 'raw-h2', label: 'node:http2, one shared heartbeat Buffer', only: ['idle-100k-h2'] },
  // A filtered broadcast at its cheapest: the even ticks only, one Buffer per turn for every
  // client (no per-client predicate): beside conduit-where, what a filter passing half can reach.
  { id: 'raw-where', module: 'raw-coalesced', variant: 'where', label: 'node:http coalesced, filtered once for all (half)', only: ['broadcast'], share: 0.5 },
  { id: 'conduit', module: 'conduit', label: 'fastify-conduit' },
  { id: 'conduit-h2', module: 'conduit', label: 'fastify-conduit, Fastify({ http2: true })', only: ['idle-100k-h2'] },
  { id: 'conduit-sync', module: 'conduit', variant: 'sync', label: 'fastify-conduit, sync generator', only: ['stream'] },
  { id: 'conduit-noschema', module: 'conduit', variant: 'noschema', label: 'fastify-conduit, no schema.sse', only: ['stream-1m'] },
  // The same schema.sse and serializer with the check accepting everything: validation alone.
  { id: 'conduit-nocheck', module: 'conduit', variant: 'nocheck', label: 'fastify-conduit, schema.sse, check off (same serializer)', only: ['stream-1m'] },
  // Channel paths beside reply.sse(channel): a where() filter passing half the events (each
  // client then expects half), the subscription handed to reply.sse, and subscribe() iterated
  // in user code (a generator re-yielding each message, which reply.sse formats per stream).
  { id: 'conduit-where', module: 'conduit', variant: 'where', label: 'fastify-conduit, where() passing half', only: ['broadcast'], share: 0.5 },
  { id: 'conduit-subscribe', module: 'conduit', variant: 'subscribe', label: 'fastify-conduit, reply.sse(channel.subscribe())', only: ['broadcast'] },
  { id: 'conduit-iterate', module: 'conduit', variant: 'iterate', label: 'fastify-conduit, subscribe() iterated in a generator', only: ['broadcast'] },
  { id: 'conduit-merge', module: 'conduit', variant: 'merge', label: 'fastify-conduit, app.sse.merge() of the channel and a quiet one', only: ['broadcast'] },
  // The same stream and broadcast with a diagnostics_channel subscriber on every channel the
  // plugin publishes on (streams are then observed: bytes and events counted): what
  // observability costs, and, beside the plain row, that no subscriber costs nothing.
  { id: 'conduit-diagnostics', module: 'conduit', variant: 'diagnostics', label: 'fastify-conduit, diagnostics_channel subscribed', only: ['stream-1m', 'broadcast-1000'] },
  // What Fastify itself costs an idle stream, without any SSE plugin: a never-ending
  // PassThrough handed to reply.send (Fastify's hooks, logging and pipe, as reply.sse keeps
  // them), and a hijacked reply written by hand (Fastify's request and reply objects only).
  { id: 'fastify-bare', module: 'fastify-bare', label: 'bare Fastify, reply.send(new PassThrough())', only: ['idle'] },
  { id: 'fastify-hijack', module: 'fastify-bare', variant: 'hijack', label: 'bare Fastify, reply.hijack() and reply.raw', only: ['idle'] },
  { id: 'fastify-sse', module: 'fastify-sse', label: '@fastify/sse' },
  { id: 'fastify-sse-v2', module: 'fastify-sse-v2', label: 'fastify-sse-v2' },
  { id: 'better-sse', module: 'better-sse', label: 'better-sse' },
  // The client's parser against eventsource-parser, on the same bytes (bench/parser.mjs).
  { id: 'parser-conduit', parser: 'conduit', label: 'fastify-conduit/client EventStreamParser', only: ['parser'] },
  { id: 'eventsource-parser', parser: 'eventsource-parser', label: 'eventsource-parser, after a streaming TextDecoder', only: ['parser'] }
]

/** What each kind of scenario compares with; the others run only in server scenarios. */
const BASELINES = { stream: 'raw-coalesced', broadcast: 'raw-coalesced', idle: 'raw-coalesced', parser: 'eventsource-parser', storm: 'raw-naive', mass: 'raw-coalesced' }

// --compare <dir>: another build of fastify-conduit (a checkout's root, built) runs beside this
// one in the same run, each fastify-conduit contender twice (`conduit-where@other`, …): how a
// regression is bisected on a machine too noisy to compare separate runs.
if (args.compare) {
  const build = join(args.compare, 'dist', 'esm', 'index.js')
  for (const c of CONTENDERS.filter((c) => c.module === 'conduit')) {
    CONTENDERS.splice(CONTENDERS.indexOf(c) + 1, 0, { ...c, id: `${c.id}@other`, build, label: `${c.label} (build in ${args.compare})` })
  }
}

const quick = args.quick
const RUNS = Number(args.runs ?? (quick ? 1 : 3))
// Sizes: the issue's in full mode; in quick mode smaller, so that the whole suite stays
// under two minutes on a 2-core machine.
const SCENARIOS = [
  { key: 'stream-10k', kind: 'stream', events: 10_000, warmup: [2_000, 2_000] },
  { key: 'stream-1m', kind: 'stream', events: quick ? 200_000 : 1_000_000, warmup: [2_000, 2_000] },
  { key: 'broadcast-1000', kind: 'broadcast', clients: 1_000, events: quick ? 200 : 1_000 },
  { key: 'broadcast-5000', kind: 'broadcast', clients: quick ? 2_000 : 5_000, events: quick ? 100 : 200 },
  { key: 'idle', kind: 'idle', clients: quick ? 2_000 : 5_000, warm: 100 },
  // Reconnect storm: every client at once with a Last-Event-ID spread over 1,000 events of
  // history (512-byte texts), until each has the events after its id. Peers without a replay
  // facility are left out: better-sse reads Last-Event-ID (session.lastId) but keeps no
  // history, fastify-sse-v2 neither reads nor keeps one.
  {
    key: 'storm',
    kind: 'storm',
    clients: quick ? 1_000 : 10_000,
    history: 1_000,
    contenders: ['conduit', 'raw-naive', 'fastify-sse'],
    absent: 'better-sse and fastify-sse-v2 are left out: no replay facility (better-sse reads Last-Event-ID into session.lastId but keeps no history; fastify-sse-v2 neither)'
  },
  // Idle streams by the hundred thousand on one server process, heartbeats every second: the
  // load client is several processes, each connecting from several loopback addresses.
  { key: 'idle-100k', kind: 'mass', clients: Number(args.streams ?? (quick ? 5_000 : 100_000)), heartbeatMs: 1_000, windowMs: 5_000, contenders: ['conduit', 'raw-coalesced'] },
  // The same over HTTP/2 (h2c, prior knowledge), 1,000 streams multiplexed on each connection:
  // 100 connections, so one server process holds 100,000 streams within any common open-file
  // limit. The first session's 1,000 streams are a warm-up, opened before the RSS baseline.
  {
    key: 'idle-100k-h2',
    kind: 'mass',
    h2: true,
    clients: quick ? 5_000 : 100_000,
    streamsPerSession: 1_000,
    warm: 1_000,
    heartbeatMs: 1_000,
    windowMs: 5_000,
    contenders: ['conduit-h2', 'raw-h2'],
    baseline: 'raw-h2'
  },
  { key: 'parser-small', kind: 'parser', input: 'small', events: quick ? 100_000 : 500_000 },
  { key: 'parser-large', kind: 'parser', input: 'large', events: quick ? 500 : 2_000 },
  { key: 'parser-split', kind: 'parser', input: 'split', events: quick ? 50_000 : 200_000 }
].map((s) => ({ ...s, title: title(s) }))

function title (s) {
  const n = (x) => x.toLocaleString('en-US')
  if (s.kind === 'stream') return `one stream, ${n(s.events)} events`
  if (s.kind === 'broadcast') return `broadcast, ${n(s.clients)} clients × ${n(s.events)} events`
  if (s.kind === 'parser') {
    return { small: `parser, ${n(s.events)} small events`, large: `parser, ${n(s.events)} events of ~14 KB`, split: `parser, ${n(s.events)} events in 1–64-byte chunks` }[s.input]
  }
  if (s.kind === 'storm') return `reconnect storm, ${n(s.clients)} clients resuming in ${n(s.history)} events of history`
  if (s.kind === 'mass') return `${n(s.clients)} idle streams, heartbeat every ${s.heartbeatMs / 1000} s`
  return `${n(s.clients)} idle streams`
}

const UNITS = {
  stream: { unit: 'events/s', better: 'higher' },
  broadcast: { unit: 'deliveries/s', better: 'higher' },
  idle: { unit: 'RSS per stream', better: 'lower' },
  parser: { unit: 'events/s', better: 'higher' },
  storm: { unit: 'seconds until every client caught up', better: 'lower' },
  mass: { unit: 'server RSS', better: 'lower' }
}

// At most this many HTTP/2 streams per load-client process (idle-100k-h2: 4 processes).
const STREAMS_PER_H2_CLIENT = 25_000
// At most this many sockets per load-client process (within common open-file limits) and per
// source address (the idle-100k scenario): an address has about 28,000 ephemeral ports
// (32768–60999), and those of a run just ended stay in TIME_WAIT for a minute, so every run
// takes fresh addresses.
const SOCKETS_PER_CLIENT = 10_000
const SOCKETS_PER_ADDRESS = 10_000
// From 127.x.y.2, x.y changing every second, so that a run started right after another does
// not reuse its addresses (127.0.0.1 is left to everything else).
let nextAddress = 2 + 256 * (Math.floor(Date.now() / 1000) % 60_000)
// A storm's connections waiting for their response head at any one time: all at once, as far
// as the listen backlog allows (net.core.somaxconn is commonly 4096; past it SYNs are dropped
// and retried after a second, which would be measured as the server's slowness).
const STORM_PENDING = 2048

const TIMEOUT = {
  start: 30_000,
  stream: quick ? 60_000 : 120_000,
  connect: 120_000,
  mass: 600_000,
  broadcast: quick ? 60_000 : 180_000
}
// The whole suite stops starting new runs past this budget (the issue bounds the modes at 2 and
// 15 minutes); what was skipped is reported.
const BUDGET_MS = quick ? 110_000 : 14 * 60_000
const started = Date.now()

const selected = args.only ? args.only.split(',') : null
const chosen = args.contenders ? args.contenders.split(',') : null
// Node raises its soft limit to the hard one at startup: the hard limit is what children get.
const fds = openFilesLimit()

const meta = describeEnvironment()
console.log(header(meta))

const results = []
for (const scenario of SCENARIOS) {
  if (selected && !selected.includes(scenario.key) && !selected.includes(scenario.kind)) continue
  const contenders = CONTENDERS.filter((c) =>
    (!chosen || chosen.includes(c.id)) &&
    (scenario.contenders ? scenario.contenders.includes(c.id) : !c.only ? !['parser', 'storm', 'mass'].includes(scenario.kind) : c.only.includes(scenario.kind) || c.only.includes(scenario.key)) &&
    // In the idle scenario both node:http variants hold the same bare response: one row is enough.
    !(scenario.kind === 'idle' && c.id === 'raw-naive'))
  results.push(await runScenario(scenario, contenders))
}

// The compress option's bytes, latency and memory: a script of its own (bench/compress.mjs).
if (!selected || selected.includes('compress')) {
  execFileSync(process.execPath, [join(BENCH, 'compress.mjs'), ...(quick ? ['--quick'] : [])], { stdio: 'inherit' })
}

const finished = new Date()
const outcome = { date: finished.toISOString(), mode: quick ? 'quick' : 'full', runs: RUNS, elapsedMs: Date.now() - started, ...meta, scenarios: results }
mkdirSync(RESULTS, { recursive: true })
const stamp = finished.toISOString().replace(/[:.]/g, '-')
const jsonPath = join(RESULTS, `bench-${outcome.mode}-${stamp}.json`)
writeFileSync(jsonPath, JSON.stringify(outcome, null, 2) + '\n')
const snippet = readmeSnippet(outcome)
writeFileSync(join(RESULTS, `bench-${outcome.mode}-${stamp}.md`), snippet + '\n')

console.log(`\nTotal time: ${((Date.now() - started) / 1000).toFixed(0)} s. Results: ${jsonPath}`)
if (args.markdown) console.log('\n## README snippet\n\n' + snippet)

// --- scenarios ---------------------------------------------------------------------------------

async function runScenario (scenario, contenders) {
  const { unit, better } = UNITS[scenario.kind]
  console.log(`\n### ${scenario.title} — ${unit} (${better} is better)\n`)
  const entry = { key: scenario.key, kind: scenario.kind, title: scenario.title, unit, better, sizes: sizesOf(scenario), baseline: scenario.baseline, contenders: {} }
  for (const c of contenders) entry.contenders[c.id] = { label: c.label, runs: [] }

  if (scenario.absent) {
    entry.absent = scenario.absent
    console.log(scenario.absent + '.\n')
  }
  // Over HTTP/2 a descriptor per connection, not per stream.
  const needed = (scenario.h2 ? Math.ceil(scenario.clients / scenario.streamsPerSession) : (scenario.clients ?? 1) + (scenario.warm ?? 0)) + 256
  if (fds !== null && fds.hard < needed) {
    // Past the hard limit: the server and clients of the idle-100k scenario are started through
    // prlimit(1) with a higher one, which needs root (or CAP_SYS_RESOURCE).
    const raised = scenario.kind === 'mass' ? raiseableFiles(needed) : 'only the idle-100k scenario raises it'
    if (raised === true) scenario.nofile = needed
    else {
      entry.skipped = `needs ${needed} open files per process; the hard limit is ${fds.hard} and ${raised} ` +
        `(raise it as root: ulimit -n ${needed}${scenario.kind === 'mass' ? `; or fewer streams: --streams ${fds.hard - 1_000}` : ''})`
      console.log(`Skipped: ${entry.skipped}`)
      return entry
    }
  }

  for (let run = 0; run < RUNS; run++) {
    // Round robin, starting one further along each run, so that no contender always runs
    // first (on a cold machine) or right after the heaviest one.
    const order = contenders.map((_, i) => contenders[(i + run) % contenders.length])
    for (const c of order) {
      const slot = entry.contenders[c.id]
      if (slot.unavailable) continue
      if (Date.now() - started > BUDGET_MS) {
        slot.runs.push({ error: 'skipped: time budget exhausted' })
        continue
      }
      try {
        const measured = await measure(scenario, c)
        if (measured.unavailable) {
          slot.unavailable = measured.unavailable
          continue
        }
        slot.runs.push(measured)
        if (measured.note) slot.note = measured.note
      } catch (err) {
        slot.runs.push({ error: err.message.split('\n')[0] })
        console.error(`  ${c.label}, run ${run + 1}: ${err.message}`)
      }
    }
  }

  for (const slot of Object.values(entry.contenders)) slot.summary = summarize(slot.runs)
  console.log(scenarioTable(entry))
  const notes = scenarioNotes(entry)
  if (notes) console.log('\n' + notes)
  return entry
}

function sizesOf (s) {
  return { events: s.events, clients: s.clients, warm: s.warm, warmup: s.warmup, input: s.input, history: s.history, heartbeatMs: s.heartbeatMs, windowMs: s.windowMs, h2: s.h2, streamsPerSession: s.streamsPerSession }
}

async function measure (scenario, contender) {
  if (scenario.kind === 'parser') return measureParser(scenario, contender)
  const server = new Child(SERVER, {
    contender: contender.module,
    variant: contender.variant ?? null,
    build: contender.build ?? null,
    scenario: scenario.kind === 'stream' ? 'stream' : 'subscribe',
    kind: scenario.kind,
    history: scenario.history,
    heartbeatMs: scenario.heartbeatMs,
    h2: scenario.h2 ?? false,
    lifetimeMs: TIMEOUT.start + TIMEOUT.mass + TIMEOUT.broadcast + 60_000,
    profile: args['cpu-prof'] ? join(RESULTS, 'profiles', `${scenario.key}-${contender.id}-server-${Date.now()}.cpuprofile`) : null
  }, { execArgv: ['--expose-gc', ...(scenario.kind === 'mass' ? ['--max-old-space-size=8192'] : [])], nofile: scenario.nofile ?? null })
  const clientArgs = args['cpu-prof-client']
    ? ['--cpu-prof', `--cpu-prof-dir=${join(RESULTS, 'profiles')}`, `--cpu-prof-name=${scenario.key}-${contender.id}-client-${Date.now()}.cpuprofile`]
    : []
  let client = null
  let clients = []
  try {
    const ready = await server.next(['ready', 'unavailable'], TIMEOUT.start)
    if (ready.type === 'unavailable') return { unavailable: ready.reason }
    const common = { port: ready.port, path: '/sse', lifetimeMs: TIMEOUT.connect + TIMEOUT.broadcast + 30_000 }
    let measured
    if (scenario.kind === 'stream') {
      client = new Child(CLIENT, { ...common, mode: 'stream', events: scenario.events, warmup: scenario.warmup }, { execArgv: clientArgs })
      const r = await client.next('result', TIMEOUT.stream)
      const seconds = Number(r.ns) / 1e9
      measured = { value: scenario.events / seconds, seconds, headMs: Number(r.headNs) / 1e6, bodyBytes: r.bodyBytes, ...cpuOf(r.cpu, seconds), sample: r.sample }
    } else if (scenario.kind === 'storm') {
      if (ready.historyIds === undefined) return { unavailable: 'no channel history in this build' }
      client = new Child(CLIENT, { ...common, mode: 'many', events: 0, maxPending: STORM_PENDING, resume: ready.historyIds }, { execArgv: clientArgs })
      measured = await measureStorm(scenario, server, client, ready)
    } else if (scenario.kind === 'mass') {
      clients = scenario.h2 ? h2Clients(scenario, common, clientArgs) : massClients(scenario, common, clientArgs)
      measured = await measureMass(scenario, server, clients, ready)
    } else {
      client = new Child(CLIENT, { ...common, mode: 'many', events: scenario.kind === 'broadcast' ? delivered(scenario, contender) : 0, maxPending: 128 }, { execArgv: clientArgs })
      measured = scenario.kind === 'broadcast'
        ? await measureBroadcast(scenario, server, client, ready, delivered(scenario, contender))
        : await measureIdle(scenario, server, client, ready)
    }
    const stats = await server.ask({ type: 'stats' }, 'stats', 10_000)
    return { ...measured, peakRss: stats.hwm, serverCpuMs: (stats.cpu.user + stats.cpu.system) / 1000, loopDelay: stats.loopDelay, note: ready.note }
  } finally {
    await Promise.all([server.stop(), client?.stop(), ...clients.map((c) => c.stop())])
  }
}

/** One parser over one input, in its own process: events/s. */
async function measureParser (scenario, contender) {
  const child = new Child(PARSER, { contender: contender.parser, input: scenario.input, events: scenario.events, lifetimeMs: TIMEOUT.stream })
  try {
    const r = await child.next(['result', 'unavailable'], TIMEOUT.stream)
    if (r.type === 'unavailable') return { unavailable: r.reason }
    const seconds = r.ns / 1e9
    return { value: r.events / seconds, seconds, megabytesPerSecond: r.bytes / 2 ** 20 / seconds }
  } finally {
    await child.stop()
  }
}

/** Events each client of a broadcast gets: all of them, or the share a filtering contender passes. */
function delivered (scenario, contender) {
  return Math.round(scenario.events * (contender.share ?? 1))
}

/**
 * All clients connect and wait; then the server publishes; timed until the last client has all
 * (`events` each: fewer than published when the contender filters).
 */
async function measureBroadcast (scenario, server, client, ready, events) {
  await client.ask({ type: 'open', count: scenario.clients }, 'heads', TIMEOUT.connect)
  await allSubscribed(server, ready, scenario.clients)
  if (args['cpu-prof']) await server.ask({ type: 'profile' }, 'profiling', 10_000)
  client.send({ type: 'go' })
  const published = await server.ask({ type: 'publish', events: scenario.events }, 'published', TIMEOUT.broadcast)
  const done = await client.next('done', TIMEOUT.broadcast)
  const seconds = Number(BigInt(done.tDone) - BigInt(published.t0)) / 1e9
  return {
    value: scenario.clients * events / seconds,
    seconds,
    publishMs: Number(BigInt(published.t1) - BigInt(published.t0)) / 1e6,
    ...cpuOf(done.cpu, seconds)
  }
}

/** RSS after GC with `warm` streams open, then with `clients` more: the delta per stream. */
async function measureIdle (scenario, server, client, ready) {
  await client.ask({ type: 'open', count: scenario.warm }, 'heads', TIMEOUT.connect)
  await allSubscribed(server, ready, scenario.warm)
  const before = await server.ask({ type: 'memory' }, 'memory', 10_000)
  await client.ask({ type: 'open', count: scenario.clients }, 'heads', TIMEOUT.connect)
  await allSubscribed(server, ready, scenario.warm + scenario.clients)
  const after = await server.ask({ type: 'memory' }, 'memory', 10_000)
  return {
    value: (after.rss - before.rss) / scenario.clients,
    heapPerStream: (after.heapUsed - before.heapUsed) / scenario.clients,
    rssBefore: before.rss,
    rssAfter: after.rss
  }
}

/**
 * The storm: the server has its history; every client connects at once with its Last-Event-ID
 * (the runner's 'go', then 'open' for all); timed in the client from the 'open' to the moment
 * the last socket has every event after its id. The server records its event-loop delay from
 * just before. `rssBefore` is the server's RSS (after GC) with the history and no client.
 */
async function measureStorm (scenario, server, client, ready) {
  const before = await server.ask({ type: 'memory' }, 'memory', 10_000)
  await server.ask({ type: 'loop' }, 'looping', 10_000)
  client.send({ type: 'go' })
  client.send({ type: 'open', count: scenario.clients })
  const done = await client.next('done', TIMEOUT.broadcast)
  const seconds = Number(BigInt(done.tDone) - BigInt(done.tOpen)) / 1e9
  return {
    value: seconds,
    seconds,
    deliveries: done.frames,
    rssBefore: before.rss,
    historyBytes: ready.historyBytes,
    ...cpuOf(done.cpu, seconds)
  }
}

/**
 * Load clients for the idle-100k scenario: at most SOCKETS_PER_CLIENT sockets each, each socket
 * from one of the process's source addresses (at most SOCKETS_PER_ADDRESS on each).
 */
function massClients (scenario, common, execArgv) {
  const processes = Math.ceil(scenario.clients / SOCKETS_PER_CLIENT)
  return Array.from({ length: processes }, (_, p) => {
    const count = Math.floor(scenario.clients / processes) + (p < scenario.clients % processes ? 1 : 0)
    const localAddresses = Array.from({ length: Math.ceil(count / SOCKETS_PER_ADDRESS) }, () => loopbackAddress(nextAddress++))
    const child = new Child(CLIENT, { ...common, lifetimeMs: TIMEOUT.mass + 60_000, mode: 'many', events: 0, maxPending: 128, localAddresses },
      { execArgv, nofile: count + 256 > (fds?.hard ?? Infinity) ? count + 256 : null })
    child.count = count
    return child
  })
}

/**
 * Load clients for the idle-100k-h2 scenario: at most STREAMS_PER_H2_CLIENT streams each,
 * `streamsPerSession` on each of its HTTP/2 connections.
 */
function h2Clients (scenario, common, execArgv) {
  const processes = Math.ceil(scenario.clients / STREAMS_PER_H2_CLIENT)
  return Array.from({ length: processes }, (_, p) => {
    const count = Math.floor(scenario.clients / processes) + (p < scenario.clients % processes ? 1 : 0)
    const child = new Child(H2_CLIENT, { ...common, lifetimeMs: TIMEOUT.mass + 60_000, maxPending: 128, streamsPerSession: scenario.streamsPerSession, capacity: count }, { execArgv })
    child.count = count
    return child
  })
}

/** The n-th address of 127.0.0.0/8 (2: 127.0.0.2, 256: 127.0.1.0, …). */
function loopbackAddress (n) {
  return `127.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`
}

/**
 * The idle-100k scenario: every client process opens its share (paced, 128 waiting per process)
 * and the time runs until the server counts them all (connect rate); the server's RSS after GC
 * then (total, and per stream over its RSS before any); then its CPU over `windowMs` with every
 * stream idle but for heartbeats (share of one core, and per heartbeat sent).
 */
async function measureMass (scenario, server, clients, ready) {
  // With `warm` (idle-100k-h2): that many streams first, on the first client process (its first
  // session), before the RSS baseline; they count in the total, not in the connect rate.
  const warm = scenario.warm ?? 0
  if (warm > 0) {
    await clients[0].ask({ type: 'open', count: warm }, 'heads', TIMEOUT.mass)
    await allSubscribed(server, ready, warm, TIMEOUT.mass)
  }
  const before = await server.ask({ type: 'memory' }, 'memory', 10_000)
  const t0 = process.hrtime.bigint()
  await Promise.all(clients.map((c, i) => c.ask({ type: 'open', count: c.count - (i === 0 ? warm : 0) }, 'heads', TIMEOUT.mass)))
  await allSubscribed(server, ready, scenario.clients, TIMEOUT.mass)
  const connectSeconds = Number(process.hrtime.bigint() - t0) / 1e9
  const after = await server.ask({ type: 'memory' }, 'memory', 30_000)
  if (after.connected < scenario.clients) throw new Error(`only ${after.connected} of ${scenario.clients} streams open`)
  // HTTP/2: every stream's heartbeats over the CPU window are counted in the client.
  if (scenario.h2) await Promise.all(clients.map((c) => c.ask({ type: 'mark' }, 'marked', 30_000)))
  const cpu = await server.ask({ type: 'cpu', ms: scenario.windowMs }, 'cpu', scenario.windowMs + 30_000)
  let beats
  if (scenario.h2) {
    const checked = await Promise.all(clients.map((c) => c.ask({ type: 'check' }, 'checked', 30_000)))
    beats = {
      streams: checked.reduce((sum, c) => sum + c.streams, 0),
      min: Math.min(...checked.map((c) => c.minBeats)),
      max: Math.max(...checked.map((c) => c.maxBeats)),
      silent: checked.reduce((sum, c) => sum + c.silent, 0)
    }
  }
  const heartbeats = scenario.clients * cpu.elapsedMs / scenario.heartbeatMs
  return {
    value: after.rss,
    rssPerStream: (after.rss - before.rss) / (scenario.clients - warm),
    heapPerStream: (after.heapUsed - before.heapUsed) / (scenario.clients - warm),
    connectSeconds,
    connectRate: (scenario.clients - warm) / connectSeconds,
    heartbeatCpuShare: cpu.cpuMs / cpu.elapsedMs,
    microsecondsPerHeartbeat: cpu.cpuMs * 1000 / heartbeats,
    ...(beats ? { beats } : {})
  }
}

/**
 * Every client has its response head; when the server can tell, also wait until it counts that
 * many subscribers (a head can be flushed before the subscription exists).
 */
async function allSubscribed (server, ready, count, timeoutMs = TIMEOUT.connect) {
  if (ready.countsConnections) await server.ask({ type: 'await', count }, 'connected', timeoutMs)
  else await new Promise((resolve) => setTimeout(resolve, 500))
}

function cpuOf (cpu, seconds) {
  const ms = (cpu.user + cpu.system) / 1000
  return { clientCpuMs: ms, clientCpuShare: ms / 1000 / seconds }
}

// --- output --------------------------------------------------------------------------------------

function describeEnvironment () {
  const cpus = os.cpus()
  const version = (name) => {
    try {
      return JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version
    } catch {
      return 'not installed'
    }
  }
  let rev = ''
  try {
    rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {}
  const own = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  return {
    machine: {
      cpu: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      memory: os.totalmem(),
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      loadavg: os.loadavg().map((l) => Number(l.toFixed(2))),
      openFiles: fds
    },
    versions: {
      node: process.version,
      'fastify-conduit': `${own.version}${rev ? ` (${rev})` : ''}`,
      fastify: version('fastify'),
      '@fastify/sse': version('@fastify/sse'),
      'fastify-sse-v2': version('fastify-sse-v2'),
      'better-sse': version('better-sse'),
      '@sinclair/typebox': version('@sinclair/typebox'),
      'fast-json-stringify': version('fast-json-stringify')
    }
  }
}

function header ({ machine, versions }) {
  return [
    `# fastify-conduit benchmarks (${quick ? 'quick' : 'full'} mode, ${RUNS} run${RUNS === 1 ? '' : 's'} per contender)`,
    '',
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${megabytes(machine.memory)} RAM, ${machine.os}; load average ${machine.loadavg.join(' ')}` +
      (machine.openFiles ? `; open files limit ${machine.openFiles.hard}` : ''),
    'Versions: ' + Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', '),
    '',
    'Servers and the load client run in separate processes; the client reads raw sockets and counts',
    'complete events. Medians and min–max over the runs; "vs coalesced" = median / hand-tuned node:http median.'
  ].join('\n')
}

function baselineOf (entry) {
  return entry.contenders[entry.baseline ?? BASELINES[entry.kind]]?.summary?.value?.median
}

function scenarioTable (entry) {
  const base = baselineOf(entry)
  const idle = entry.kind === 'idle'
  if (entry.kind === 'parser') return parserTable(entry, base)
  if (entry.kind === 'storm' || entry.kind === 'mass') return loadTable(entry, base)
  const rows = Object.values(entry.contenders).map((slot) => {
    const s = slot.summary
    if (slot.unavailable) return [slot.label, `not available: ${slot.unavailable}`, '', '', '', '']
    if (s === null || s.value === null) {
      const error = slot.runs.find((r) => r.error)?.error ?? 'no result'
      return [slot.label, `failed: ${error}`, '', '', '', '']
    }
    const v = s.value
    const format = idle ? kilobytes : si
    const range = RUNS > 1 ? `${format(v.min)}–${format(v.max)}` : '—'
    const failed = slot.runs.length - s.runs
    return [
      slot.label + (failed > 0 ? ` (${failed} run${failed > 1 ? 's' : ''} failed)` : ''),
      format(v.median),
      range,
      ratio(v.median, base),
      megabytes(s.peakRss?.median),
      idle ? kilobytes(s.heapPerStream?.median) : `${Math.round(s.clientCpuMs.median)} ms (${Math.round(s.clientCpuShare.median * 100)}%)`
    ]
  })
  const last = idle ? 'JS heap per stream' : 'client CPU (share of elapsed)'
  return table(['contender', idle ? 'RSS per stream' : entry.unit, 'min–max', 'vs coalesced', 'server peak RSS', last], rows)
}

/** The median over a contender's successful runs of `pick(run)`. */
function medianOf (slot, pick) {
  return summarize(slot.runs.filter((r) => r.error === undefined).map((r) => ({ value: pick(r) })))?.value?.median
}

/** The storm's and the idle-100k scenario's table. */
function loadTable (entry, base) {
  const storm = entry.kind === 'storm'
  const h2 = entry.sizes.h2 === true
  const rows = Object.values(entry.contenders).map((slot) => {
    const s = slot.summary
    const blank = storm ? ['', '', '', '', '', ''] : h2 ? ['', '', '', '', '', ''] : ['', '', '', '', '']
    if (slot.unavailable) return [slot.label, `not available: ${slot.unavailable}`, ...blank]
    if (s === null || s.value === null) return [slot.label, `failed: ${slot.runs.find((r) => r.error)?.error ?? 'no result'}`, ...blank]
    const v = s.value
    const failed = slot.runs.length - s.runs
    const label = slot.label + (failed > 0 ? ` (${failed} run${failed > 1 ? 's' : ''} failed)` : '')
    if (storm) {
      const seconds = (x) => `${x.toFixed(2)} s`
      const ms = (x) => Number.isFinite(x) ? `${x.toFixed(0)} ms` : '—'
      return [
        label,
        seconds(v.median),
        RUNS > 1 ? `${seconds(v.min)}–${seconds(v.max)}` : '—',
        ratio(v.median, base),
        megabytes(s.peakRss?.median),
        megabytes(medianOf(slot, (r) => r.peakRss - r.rssBefore)),
        `${ms(medianOf(slot, (r) => r.loopDelay?.p99))} / ${ms(medianOf(slot, (r) => r.loopDelay?.max))}`,
        `${Math.round(s.clientCpuMs.median)} ms (${Math.round(s.clientCpuShare.median * 100)}%)`
      ]
    }
    return [
      label,
      megabytes(v.median),
      ratio(v.median, base),
      kilobytes(medianOf(slot, (r) => r.rssPerStream)),
      `${si(medianOf(slot, (r) => r.connectRate))}/s`,
      `${(medianOf(slot, (r) => r.heartbeatCpuShare) * 100).toFixed(1)}%`,
      `${medianOf(slot, (r) => r.microsecondsPerHeartbeat).toFixed(2)} µs`,
      ...(h2 ? [heartbeatsOf(slot, entry.sizes)] : [])
    ]
  })
  return storm
    ? table(['contender', 'time to catch up', 'min–max', 'vs naive', 'server peak RSS', 'peak RSS added by the storm', 'event-loop delay p99 / max', 'client CPU (share of elapsed)'], rows)
    : table(['contender', 'server RSS', h2 ? 'vs node:http2' : 'vs coalesced', 'RSS per stream', 'connect rate (streams/s)', 'heartbeat CPU (share of a core)', 'CPU per heartbeat',
      ...(h2 ? [`heartbeats per stream in ${entry.sizes.windowMs / 1000} s (min–max, streams without)`] : [])], rows)
}

/** HTTP/2: the heartbeats every stream got over the CPU window, over all runs. */
function heartbeatsOf (slot, { clients }) {
  const runs = slot.runs.filter((r) => r.beats)
  if (runs.length === 0) return '—'
  const min = Math.min(...runs.map((r) => r.beats.min))
  const max = Math.max(...runs.map((r) => r.beats.max))
  const silent = runs.reduce((sum, r) => sum + r.beats.silent, 0)
  const all = runs.every((r) => r.beats.streams === clients)
  return `${min}–${max}, ${silent} without${all ? '' : ' (not every stream counted)'}`
}

function parserTable (entry, base) {
  const rows = Object.values(entry.contenders).map((slot) => {
    const s = slot.summary
    if (slot.unavailable) return [slot.label, `not available: ${slot.unavailable}`, '', '', '']
    if (s === null || s.value === null) return [slot.label, `failed: ${slot.runs.find((r) => r.error)?.error ?? 'no result'}`, '', '', '']
    const mb = summarize(slot.runs.map((r) => ({ ...r, value: r.megabytesPerSecond }))).value.median
    return [slot.label, si(s.value.median), RUNS > 1 ? `${si(s.value.min)}–${si(s.value.max)}` : '—', ratio(s.value.median, base), `${mb.toFixed(0)} MB/s`]
  })
  return table(['parser', 'events/s', 'min–max', 'vs eventsource-parser', 'input'], rows)
}

function scenarioNotes (entry) {
  const notes = []
  const median = (id) => entry.contenders[id]?.summary?.value?.median
  const direct = median('conduit')
  const observed = median('conduit-diagnostics')
  if (Number.isFinite(direct) && Number.isFinite(observed)) {
    notes.push(`diagnostics_channel: with a subscriber ${si(observed)}, without ${si(direct)} (${ratio(observed, direct)}); ` +
      'without one, a stream is not observed at all (one undefined check per written batch).')
  }
  if (entry.key === 'stream-1m') {
    const withSchema = median('conduit')
    const without = median('conduit-noschema')
    const sync = median('conduit-sync')
    if (Number.isFinite(withSchema) && Number.isFinite(without)) {
      notes.push(`Validation overhead (fastify-conduit, same stream): with schema.sse ${si(withSchema)} events/s, ` +
        `without ${si(without)} events/s (${ratio(withSchema, without)}; with a schema every event is checked, then ` +
        'serialized by fast-json-stringify instead of JSON.stringify).')
      entry.validationOverhead = { withSchema, without, slowdown: 1 - withSchema / without }
    }
    const unchecked = median('conduit-nocheck')
    if (Number.isFinite(withSchema) && Number.isFinite(unchecked)) {
      notes.push('Validation alone (same schema.sse, same fast-json-stringify serializer, the check on or accepting everything): ' +
        `on ${si(withSchema)} events/s, off ${si(unchecked)} events/s (${ratio(withSchema, unchecked)}).`)
      entry.checkOverhead = { on: withSchema, off: unchecked, slowdown: 1 - withSchema / unchecked }
    }
    if (Number.isFinite(withSchema) && Number.isFinite(sync)) {
      notes.push(`Sync generator source: ${si(sync)} events/s vs async generator ${si(withSchema)} (${ratio(sync, withSchema)}).`)
    }
  }
  if (entry.kind === 'broadcast') {
    notes.push('node:http coalesced gathers the events published within one turn of the event loop into one Buffer, ' +
      'written to every client; "one Buffer per event" writes each event to every client as it is published.')
    const where = median('conduit-where')
    if (Number.isFinite(direct) && Number.isFinite(where)) {
      // A filter passing half delivers half the events in about the time of the whole broadcast
      // (the writes per client are as many): events offered to a subscriber per second tells the
      // filter's cost apart from that.
      notes.push(`where() passing half vs reply.sse(channel): ${ratio(where, direct)} of its deliveries/s; ` +
        `${ratio(where * 2, direct)} of its events offered per subscriber per second (delivered or filtered out).`)
    }
    const rawWhere = median('raw-where')
    const raw = median('raw-coalesced')
    if (Number.isFinite(rawWhere) && Number.isFinite(raw)) {
      // The same filter on hand-tuned node:http, made once for all clients: the transport's own
      // ratio between a half and a whole broadcast, which no per-client filter can beat.
      notes.push(`node:http filtered once for all vs node:http coalesced: ${ratio(rawWhere, raw)} of its deliveries/s` +
        (Number.isFinite(where) ? `; where() vs it: ${ratio(where, rawWhere)}.` : '.'))
    }
    for (const id of ['conduit-subscribe', 'conduit-iterate']) {
      const v = median(id)
      if (Number.isFinite(direct) && Number.isFinite(v)) notes.push(`${entry.contenders[id].label} vs reply.sse(channel): ${ratio(v, direct)}.`)
    }
  }
  if (entry.kind === 'idle') {
    const raw = median('raw-coalesced')
    const passThrough = median('fastify-bare')
    if (Number.isFinite(direct) && Number.isFinite(passThrough) && Number.isFinite(raw)) {
      notes.push(`Per idle stream: node:http ${kilobytes(raw)}, bare Fastify with a PassThrough body ${kilobytes(passThrough)} ` +
        `(Fastify's share ${kilobytes(passThrough - raw)}), fastify-conduit ${kilobytes(direct)} (its own share ${kilobytes(direct - passThrough)}).`)
    }
  }
  if (entry.kind === 'storm') notes.push(...stormNotes(entry))
  if (entry.kind === 'mass' && entry.sizes.h2) {
    const { clients, streamsPerSession, warm, windowMs, heartbeatMs } = entry.sizes
    notes.push(`HTTP/2 cleartext (h2c, prior knowledge): ${streamsPerSession.toLocaleString('en-US')} streams on each of ${Math.ceil(clients / streamsPerSession)} connections, ` +
      `from ${Math.ceil(clients / STREAMS_PER_H2_CLIENT)} load-client process(es) (node:http2, 128 streams waiting for their head per process at a time). ` +
      `The first ${warm.toLocaleString('en-US')} streams are a warm-up opened before the RSS baseline: RSS per stream and the connect rate are over the other ${(clients - warm).toLocaleString('en-US')}; server RSS is the total with all ${clients.toLocaleString('en-US')} open, after GC. ` +
      `Heartbeat CPU: the server's CPU time over ${windowMs / 1000} s with every stream idle but for a heartbeat every ${heartbeatMs / 1000} s; ` +
      'the client counts every stream\'s heartbeats over about the same window (marked just before, checked just after).')
  } else if (entry.kind === 'mass') {
    notes.push(`Connect rate: from the first connection to the server counting them all (load clients: ${Math.ceil(entry.sizes.clients / SOCKETS_PER_CLIENT)} ` +
      `process(es), ≤ ${SOCKETS_PER_ADDRESS.toLocaleString('en-US')} sockets per source address, 128 connecting per process at a time). ` +
      `RSS after GC with every stream open. Heartbeat CPU: the server's CPU time over ${entry.sizes.windowMs / 1000} s with every stream idle ` +
      `but for a heartbeat every ${entry.sizes.heartbeatMs / 1000} s, as a share of one core and per heartbeat sent.`)
  }
  for (const slot of Object.values(entry.contenders)) if (slot.note) notes.push(`${slot.label}: ${slot.note}`)
  return notes.join('\n')
}

/**
 * What bounds a storm's memory: fastify-conduit holds per resuming subscriber about one replay
 * page (100 events) plus its stream's buffer (64 KiB, one 32 KiB batch and one event on top;
 * README, Replay); a naive replay holds up to the whole history per client.
 */
function stormNotes (entry) {
  const notes = []
  const { clients, history } = entry.sizes
  for (const [id, slot] of Object.entries(entry.contenders)) {
    const historyBytes = medianOf(slot, (r) => r.historyBytes)
    if (!Number.isFinite(historyBytes)) continue
    const event = historyBytes / history
    const buffer = 100 * event + 64 * 1024 + 32 * 1024 + event
    const added = medianOf(slot, (r) => r.peakRss - r.rssBefore)
    notes.push(`${slot.label}: peak RSS added by the storm ${megabytes(added)}` +
      (id === 'conduit' ? `; bound, clients × per-subscriber buffer (one page of 100 events + 64 KiB + 32 KiB + one event = ${kilobytes(buffer)}): ${megabytes(clients * buffer)}` : '') +
      `; clients × history (${kilobytes(historyBytes)}): ${megabytes(clients * historyBytes)}.`)
  }
  notes.push('Time to catch up: from the load client starting all connections (at most ' +
    `${STORM_PENDING} waiting for their head at a time) to the last one having every event after its Last-Event-ID ` +
    '(client k resumes after the (k mod 999)-th id). Event-loop delay: the server\'s monitorEventLoopDelay (10 ms resolution) over the storm. ' +
    'Kernel socket buffers are not in RSS.')
  return notes
}

function readmeSnippet (outcome) {
  const scenarios = outcome.scenarios.filter((e) => !e.skipped && !['parser', 'storm', 'mass'].includes(e.kind))
  const loads = outcome.scenarios.filter((e) => !e.skipped && ['storm', 'mass'].includes(e.kind))
  const parsers = outcome.scenarios.filter((e) => !e.skipped && e.kind === 'parser')
  const ran = CONTENDERS.filter((c) => scenarios.some((e) => e.contenders[c.id] !== undefined))
  const rows = ran.map(({ id, label }) => [label, ...scenarios.map((e) => {
    const slot = e.contenders[id]
    const v = slot?.summary?.value?.median
    if (slot === undefined || !Number.isFinite(v)) return slot?.unavailable ? 'n/a' : '—'
    return `${e.kind === 'idle' ? kilobytes(v) : si(v)} (${ratio(v, baselineOf(e))})`
  })])
  const head = ['', ...scenarios.map((e) => `${e.title} (${e.kind === 'idle' ? 'RSS/stream' : e.unit})`)]
  const { machine, versions } = outcome
  const parserRows = CONTENDERS.filter((c) => parsers.some((e) => e.contenders[c.id] !== undefined)).map(({ id, label }) => [label, ...parsers.map((e) => {
    const v = e.contenders[id]?.summary?.value?.median
    return Number.isFinite(v) ? `${si(v)} (${ratio(v, baselineOf(e))})` : '—'
  })])
  return [
    ...(scenarios.length > 0 ? [table(head, rows), ''] : []),
    ...(parsers.length > 0 ? [table(['', ...parsers.map((e) => `${e.title} (events/s)`)], parserRows), ''] : []),
    ...loads.flatMap((e) => [`${e.title}:`, '', scenarioTable(e), '', scenarioNotes(e), '']),
    `<sub>${outcome.mode} mode, median of ${outcome.runs} run${outcome.runs === 1 ? '' : 's'}; (×) relative to hand-tuned node:http${parsers.length > 0 ? ' (parsers: to eventsource-parser)' : ''}` +
      `${loads.some((e) => e.kind === 'storm') ? ' (reconnect storm: to naive node:http)' : ''}. ` +
      `${machine.cpu}, ${machine.cores} cores; Node ${versions.node}, fastify ${versions.fastify}. ` +
      `Reproduce with \`npm run bench${outcome.mode === 'quick' ? ' -- --quick' : ''}\`.</sub>`
  ].join('\n')
}
