// tap coverage map: every test is measured against lib/ only (so the package test, which
// loads the built dist/, does not count dist/ as code under test). Paths are relative to
// the project root, as tap expects.
// CONDUIT_COVERAGE_EXCLUDE (a path prefix, set by scripts/test-unit.mjs when Redis is not
// there to test against) leaves what could not run out of the gate.
import { readdirSync } from 'node:fs'

const exclude = process.env.CONDUIT_COVERAGE_EXCLUDE
const lib = readdirSync('lib', { recursive: true })
  .filter((file) => file.endsWith('.ts'))
  .map((file) => `lib/${file}`)
  .filter((file) => exclude === undefined || exclude === '' || !file.startsWith(exclude))

export default () => lib
