// What an idle stream holds on the JS heap, line by line: `node bench/idle-heap.mjs [--streams N]
// [--markdown]`. For node:http, bare Fastify hijacked, bare Fastify with reply.send(PassThrough)
// and fastify-conduit (reply.sse(channel), as in the idle scenario), each in its own server
// process: a heap snapshot (after GC) with `warm` idle streams open, another with `streams` more,
// and the difference per stream, grouped by what V8 names each object (a constructor, a closure's
// function, `system / Context` for the variables closures keep, arrays, strings). Beside the
// idle scenario's RSS per stream, it says which objects an idle stream costs and whose they are:
// the column "fastify-conduit − bare Fastify" is what the plugin adds to Fastify's own
// `reply.send` path. Snapshots are written to bench/results/heap/ (git-ignored) and removed.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Child } from './processes.mjs'

const BENCH = dirname(fileURLToPath(import.meta.url))
const RESULTS = join(BENCH, 'results')
const HEAP = join(RESULTS, 'heap')
const { values: args } = parseArgs({ options: { streams: { type: 'string' }, warm: { type: 'string' }, markdown: { type: 'boolean' } } })
const STREAMS = Number(args.streams ?? 2000)
const WARM = Number(args.warm ?? 200)

const CONTENDERS = [
  { id: 'raw', module: 'raw-coalesced', label: 'node:http' },
  { id: 'hijack', module: 'fastify-bare', variant: 'hijack', label: 'bare Fastify, hijacked' },
  { id: 'bare', module: 'fastify-bare', label: 'bare Fastify, reply.send(PassThrough)' },
  { id: 'conduit', module: 'conduit', label: 'fastify-conduit, reply.sse(channel)' }
]

/** Self size and count per `type:name` in a heap snapshot file. */
function aggregate (file) {
  const snapshot = JSON.parse(readFileSync(file, 'utf8'))
  const { node_fields: fields, node_types: [types] } = snapshot.snapshot.meta
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const { nodes, strings } = snapshot
  const lines = new Map()
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]]
    let name = strings[nodes[i + nameAt]]
    // Strings, numbers and code by kind only: their names are their contents or addresses.
    if (/string|number|code|bigint|symbol/.test(type)) name = ''
    else if (name.length > 60) name = name.slice(0, 57) + '...'
    const key = `${type}\u0000${name}`
    const line = lines.get(key) ?? { count: 0, size: 0 }
    line.count++
    line.size += nodes[i + sizeAt]
    lines.set(key, line)
  }
  return lines
}

async function measure (contender) {
  const config = { contender: contender.module, variant: contender.variant ?? null, build: null, scenario: 'subscribe', kind: 'idle', lifetimeMs: 600_000 }
  const server = new Child(join(BENCH, 'server.mjs'), config, { execArgv: ['--expose-gc'] })
  let client = null
  try {
    const ready = await server.next(['ready', 'unavailable'], 30_000)
    if (ready.type === 'unavailable') throw new Error(`${contender.id}: ${ready.reason}`)
    client = new Child(join(BENCH, 'client.mjs'), { port: ready.port, path: '/sse', lifetimeMs: 600_000, mode: 'many', events: 0, maxPending: 128 })
    const open = async (count, total) => {
      await client.ask({ type: 'open', count }, 'heads', 120_000)
      if (ready.countsConnections) await server.ask({ type: 'await', count: total }, 'connected', 120_000)
      else await new Promise((resolve) => setTimeout(resolve, 500))
    }
    await open(WARM, WARM)
    mkdirSync(HEAP, { recursive: true })
    const before = (await server.ask({ type: 'heap', file: join(HEAP, `${contender.id}-before.heapsnapshot`) }, 'heap', 120_000)).file
    await open(STREAMS, WARM + STREAMS)
    const after = (await server.ask({ type: 'heap', file: join(HEAP, `${contender.id}-after.heapsnapshot`) }, 'heap', 120_000)).file
    const a = aggregate(before)
    const b = aggregate(after)
    rmSync(before)
    rmSync(after)
    const perStream = new Map()
    for (const key of new Set([...a.keys(), ...b.keys()])) {
      const size = ((b.get(key)?.size ?? 0) - (a.get(key)?.size ?? 0)) / STREAMS
      const count = ((b.get(key)?.count ?? 0) - (a.get(key)?.count ?? 0)) / STREAMS
      if (size !== 0 || count !== 0) perStream.set(key, { size, count })
    }
    return perStream
  } finally {
    await Promise.all([server.stop(), client?.stop()])
  }
}

const results = {}
for (const contender of CONTENDERS) {
  process.stderr.write(`${contender.label}: ${WARM} + ${STREAMS} idle streams...\n`)
  results[contender.id] = await measure(contender)
}

// One line per type and name that any contender holds at least 16 bytes of per stream (the
// rest summed in "other"), largest for fastify-conduit first.
const keys = new Set(Object.values(results).flatMap((lines) => [...lines.keys()]))
const total = (id) => [...results[id].values()].reduce((sum, line) => sum + line.size, 0)
const rows = []
const other = Object.fromEntries(CONTENDERS.map((c) => [c.id, 0]))
for (const key of keys) {
  const sizes = Object.fromEntries(CONTENDERS.map((c) => [c.id, results[c.id].get(key) ?? { size: 0, count: 0 }]))
  if (Object.values(sizes).some((line) => Math.abs(line.size) >= 16)) {
    const [type, name] = key.split('\u0000')
    rows.push({ type, name, sizes })
  } else for (const c of CONTENDERS) other[c.id] += sizes[c.id].size
}
rows.sort((x, y) => y.sizes.conduit.size - x.sizes.conduit.size || y.sizes.bare.size - x.sizes.bare.size)

const cell = ({ size, count }) => size === 0 && count === 0 ? '' : `${Math.round(size)} (${+count.toFixed(2)})`
const header = ['type', 'name', ...CONTENDERS.map((c) => c.label), 'fastify-conduit − bare Fastify']
const lines = [
  `| ${header.join(' | ')} |`,
  `| ${header.map((_, i) => i < 2 ? '---' : '---:').join(' | ')} |`,
  ...rows.map(({ type, name, sizes }) => `| ${type} | ${name === '' ? '' : '`' + name.replace(/\|/g, '\\|') + '`'} | ${CONTENDERS.map((c) => cell(sizes[c.id])).join(' | ')} | ${Math.round(sizes.conduit.size - sizes.bare.size)} |`),
  `| | other (each under 16 bytes) | ${CONTENDERS.map((c) => Math.round(other[c.id])).join(' | ')} | ${Math.round(other.conduit - other.bare)} |`,
  `| | **JS heap per stream** | ${CONTENDERS.map((c) => `**${Math.round(total(c.id))}**`).join(' | ')} | **${Math.round(total('conduit') - total('bare'))}** |`
]
const date = new Date().toISOString()
const text = `JS heap per idle stream, bytes (and objects) per stream, ${STREAMS} streams over ${WARM} warm, ${date}, Node ${process.version}\n\n${lines.join('\n')}\n`
const file = join(RESULTS, `idle-heap-${date.replace(/[:.]/g, '-')}.md`)
writeFileSync(file, text)
writeFileSync(file.replace(/\.md$/, '.json'), JSON.stringify({ date, node: process.version, streams: STREAMS, warm: WARM, contenders: CONTENDERS, results: Object.fromEntries(Object.entries(results).map(([id, m]) => [id, Object.fromEntries(m)])) }, null, 1))
process.stdout.write(text + `\nResults: ${file}\n`)
