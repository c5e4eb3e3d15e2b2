// Prints tap's totals from a test log as one plain line: "N passed, M failed".
// tap 21 ends its report with a line like "# { total: 12, pass: 11, fail: 1, skip: 2 }".
import { readFileSync } from 'node:fs'

// eslint-disable-next-line no-control-regex -- strips terminal colour codes
const log = readFileSync(process.argv[2], 'utf8').replace(/\x1b\[[0-9;]*m/g, '')
let passed = 0
let failed = 0
let skipped = 0
for (const line of log.split('\n')) {
  if (!/^#\s*\{.*total:/.test(line)) continue
  passed = Number(/pass:\s*(\d+)/.exec(line)?.[1] ?? 0)
  failed = Number(/fail:\s*(\d+)/.exec(line)?.[1] ?? 0)
  skipped = Number(/skip:\s*(\d+)/.exec(line)?.[1] ?? 0)
}
console.log(`${passed} passed, ${failed} failed` + (skipped > 0 ? `, ${skipped} skipped` : ''))
