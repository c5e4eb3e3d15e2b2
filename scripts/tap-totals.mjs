// Prints tap's totals from a test log as one plain line: "N passed, M failed".
// tap's summary reads "# { total: 12, pass: 11, fail: 1 }" style lines or "# pass N"/"# fail N";
// the tap reporter used by `npm test` ends with "# { total ... }".
import { readFileSync } from 'node:fs'

// eslint-disable-next-line no-control-regex -- strips terminal colour codes
const log = readFileSync(process.argv[2], 'utf8').replace(/\x1b\[[0-9;]*m/g, '')
let passed = 0
let failed = 0
for (const line of log.split('\n')) {
  const pass = /^#\s*pass\s+(\d+)/.exec(line)
  const fail = /^#\s*fail\s+(\d+)/.exec(line)
  if (pass) passed = Number(pass[1])
  if (fail) failed = Number(fail[1])
}
console.log(`${passed} passed, ${failed} failed`)
