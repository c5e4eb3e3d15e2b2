import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'

// The built declarations as users compile them, with skipLibCheck: false (so every shipped
// .d.ts is checked, not only what the consumer touches): tiny consumer projects in a temp
// dir whose node_modules/fastify-conduit links to this package (npm test builds before tap).
// attw checks that each condition resolves to declarations; this checks that they compile.
// Each consumer also has @ts-expect-error lines, so declarations that collapsed to `any` fail.

const root = join(import.meta.dirname, '..', '..')
// Real path: the compiler reports files by their real paths.
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'conduit-consumer-')))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true })
symlinkSync(root, join(dir, 'node_modules', 'fastify-conduit'), 'dir')
for (const name of ['fastify', '@sinclair', 'ioredis', '@types/node']) {
  symlinkSync(join(root, 'node_modules', name), join(dir, 'node_modules', name), 'dir')
}

const esm = `
import fastifyConduit, { fastifyConduit as named, formatEvent, memoryBus, type Channel, type SSEMessage } from 'fastify-conduit'
import { connect } from 'fastify-conduit/client'
import { redisBus } from 'fastify-conduit/redis'
import { streamEvents } from 'fastify-conduit/testing'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'

const Tick = Type.Object({ n: Type.Number() })
const app = Fastify()
app.register(fastifyConduit, { heartbeat: 15_000, bus: memoryBus() })
app.register(named, { bus: redisBus({ url: 'redis://127.0.0.1:6379' }) })
// @ts-expect-error heartbeat is a number of milliseconds or false
app.register(fastifyConduit, { heartbeat: '15s' })
app.get('/ticks', { schema: { sse: { tick: Tick } } }, (request, reply) => reply.sse([{ event: 'tick', data: { n: 1 } }]))
// @ts-expect-error data must match the event's schema
app.get('/bad', { schema: { sse: { tick: Tick } } }, (request, reply) => reply.sse([{ event: 'tick', data: { n: 'one' } }]))
const message: SSEMessage = { event: 'tick', data: 1 }
const channel: Channel<{ tick: typeof Tick }> = app.sse.channel('ticks', { schema: { tick: Tick } })
for await (const ev of connect('http://127.0.0.1:3000/ticks', { events: { tick: Tick } })) {
  const n: number = ev.data.n
  // @ts-expect-error ev.data is typed by the events' schemas
  const s: string = ev.data.n
}
for await (const ev of await streamEvents(app, '/ticks', { events: { tick: Tick }, limit: 1 })) {
  // @ts-expect-error ev.data is typed by the events' schemas
  const s: string = ev.data.n
}
export { channel, message }
export const frame: string = formatEvent(message)
`

const cjs = `
import fastifyConduit = require('fastify-conduit')
import client = require('fastify-conduit/client')
import redis = require('fastify-conduit/redis')
import testing = require('fastify-conduit/testing')
import Fastify = require('fastify')
import { Type } from '@sinclair/typebox'

const Tick = Type.Object({ n: Type.Number() })
const app = Fastify()
app.register(fastifyConduit, { heartbeat: 15_000, bus: fastifyConduit.memoryBus() })
app.register(fastifyConduit.default, { onInvalid: 'skip', bus: redis.redisBus({ url: 'redis://127.0.0.1:6379' }) })
// @ts-expect-error heartbeat is a number of milliseconds or false
app.register(fastifyConduit, { heartbeat: '15s' })
app.get('/ticks', { schema: { sse: { tick: Tick } } }, (request, reply) => reply.sse([{ event: 'tick', data: { n: 1 } }]))
// @ts-expect-error data must match the event's schema
app.get('/bad', { schema: { sse: { tick: Tick } } }, (request, reply) => reply.sse([{ event: 'tick', data: { n: 'one' } }]))
const message: fastifyConduit.SSEMessage = { event: 'tick', data: 1 }
const channel: fastifyConduit.Channel<{ tick: typeof Tick }> = app.sse.channel('ticks', { schema: { tick: Tick } })
// @ts-expect-error Channel is exported as a type only
new fastifyConduit.Channel()
const error: Error = new fastifyConduit.errors.InvalidOptionError('heartbeat', 'is wrong')
const stream = client.connect('http://127.0.0.1:3000/ticks', { events: { tick: Tick } })
const opened: Promise<testing.TestEventStream<{ event: 'tick', data: { n: number }, id: string, retry?: number }>> = testing.streamEvents(app, '/ticks', { events: { tick: Tick } })
export = { channel, error, stream, opened, frame: fastifyConduit.formatEvent(message) }
`

// \`const x = require(...)\` is typed in JavaScript (checkJs); in TypeScript it is \`any\`.
const required = `
'use strict'
const fastifyConduit = require('fastify-conduit')
const { formatEvent, memoryBus } = require('fastify-conduit')
const { connect } = require('fastify-conduit/client')
const { redisBus } = require('fastify-conduit/redis')
const Fastify = require('fastify')

const app = Fastify()
app.register(fastifyConduit, { bus: memoryBus() })
app.register(fastifyConduit, { bus: redisBus() })
// @ts-expect-error heartbeat is a number of milliseconds or false
app.register(fastifyConduit, { heartbeat: '15s' })
/** @type {import('fastify-conduit').SSEMessage} */
const message = { data: 'x' }
// @ts-expect-error formatEvent takes a message
formatEvent(5)
module.exports = { frame: formatEvent(message), stream: connect('http://127.0.0.1:3000/') }
`

function project (name: string, type: 'module' | 'commonjs', files: Record<string, string>): string[] {
  mkdirSync(join(dir, name))
  writeFileSync(join(dir, name, 'package.json'), JSON.stringify({ type }))
  return Object.entries(files).map(([file, text]) => {
    writeFileSync(join(dir, name, file), text)
    return join(dir, name, file)
  })
}

const esmFiles = project('esm', 'module', { 'consumer.ts': esm })
const cjsFiles = project('cjs', 'commonjs', { 'consumer.ts': cjs, 'required.js': required })

// Options as in a tsconfig.json. No DOM lib unless named: a server project sees only what
// @types/node declares.
const common = { strict: true, skipLibCheck: false, noEmit: true, allowJs: true, checkJs: true, target: 'es2022', lib: ['es2022'], types: ['node'] }
const cases = [
  { name: 'ESM, module nodenext', files: esmFiles, options: { ...common, module: 'nodenext', moduleResolution: 'nodenext' } },
  { name: 'CJS, module nodenext', files: cjsFiles, options: { ...common, module: 'nodenext', moduleResolution: 'nodenext' } },
  { name: 'CJS, module node16, with the DOM lib', files: cjsFiles, options: { ...common, module: 'node16', moduleResolution: 'node16', lib: ['es2022', 'dom'] } },
  { name: 'CJS, module commonjs, moduleResolution node10', files: cjsFiles, options: { ...common, module: 'commonjs', moduleResolution: 'node10', ignoreDeprecations: '6.0' } }
]

// A clean environment: the compiler runs several times slower under tap's coverage hooks.
const results: Array<{ name: string, diagnostics: string, checked: number }> = JSON.parse(execFileSync(
  process.execPath,
  [join(import.meta.dirname, 'typecheck-consumers.mjs')],
  { input: JSON.stringify({ root, dir, cases }), encoding: 'utf8', env: { PATH: process.env.PATH } }
))

for (const { name, diagnostics, checked } of results) {
  t.test(name, async (t) => {
    t.equal(diagnostics, '', 'no diagnostics')
    // The consumers compiled against this package's declarations, not something else's.
    t.ok(checked > 10, 'reads the declarations in dist/')
  })
}
