import { execFileSync } from 'node:child_process'
import t from 'tap'

// The built package as users load it (npm test builds before tap runs): require() returns
// the plugin itself, like every Fastify plugin, and import gives the same API.

// A clean environment: tap's coverage hooks (inherited through NODE_OPTIONS) must not count
// dist/ as code under test.
const run = (args: string[]): string =>
  execFileSync(process.execPath, args, { encoding: 'utf8', env: { PATH: process.env.PATH } }).trim()

t.test('CommonJS', async (t) => {
  const out = run(['-e', `
    const conduit = require('fastify-conduit')
    const { formatEvent, fastifyConduit, SSEEvent } = require('fastify-conduit')
    console.log(JSON.stringify([typeof conduit, conduit === fastifyConduit, conduit.default === conduit, formatEvent({ data: 'x' }), typeof SSEEvent]))
  `])
  t.same(JSON.parse(out), ['function', true, true, 'data: x\n\n', 'function'])
})

t.test('ES modules', async (t) => {
  const out = run(['--input-type=module', '-e', `
    import conduit, { formatEvent, fastifyConduit, SSEStream } from 'fastify-conduit'
    console.log(JSON.stringify([typeof conduit, conduit === fastifyConduit, formatEvent({ data: 'x' }), typeof SSEStream]))
  `])
  t.same(JSON.parse(out), ['function', true, 'data: x\n\n', 'function'])
})

t.test('fastify-conduit/client', async (t) => {
  const out = run(['-e', "const c = require('fastify-conduit/client'); console.log(typeof c.connect, typeof c.EventStreamParser)"])
  t.equal(out, 'function function')
  const esm = run(['--input-type=module', '-e', "import { connect } from 'fastify-conduit/client'; console.log(typeof connect)"])
  t.equal(esm, 'function')
})

t.test('fastify-conduit/testing', async (t) => {
  const cjs = run(['-e', "const k = require('fastify-conduit/testing'); console.log(typeof k.streamEvents, typeof k.TestEventStream)"])
  t.equal(cjs, 'function function')
  const esm = run(['--input-type=module', '-e', "import { streamEvents } from 'fastify-conduit/testing'; console.log(typeof streamEvents)"])
  t.equal(esm, 'function')
})
