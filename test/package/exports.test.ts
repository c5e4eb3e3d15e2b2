import { execFileSync } from 'node:child_process'
import t from 'tap'

// The built package as users load it (npm test builds before tap runs): require() returns
// the plugin itself, like every Fastify plugin, and import gives the same API.

const run = (args: string[]): string => execFileSync(process.execPath, args, { encoding: 'utf8' }).trim()

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
