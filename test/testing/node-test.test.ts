import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// The README's user test, run with node:test against the built package (npm test builds
// before tap runs), in a clean environment: tap's coverage hooks must not count dist/.
t.test("a user's node:test test with fastify-conduit/testing passes", async (t) => {
  const file = fileURLToPath(new URL('../fixtures/testing/chat.node-test.mjs', import.meta.url))
  const out = execFileSync(process.execPath, ['--test', '--test-reporter=tap', file], { encoding: 'utf8', env: { PATH: process.env.PATH } })
  t.match(out, /^# pass 1$/m)
  t.match(out, /^# fail 0$/m)
})
