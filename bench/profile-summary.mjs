// node bench/profile-summary.mjs <file.cpuprofile> [top=25]
// Prints the functions with the most self time in a V8 CPU profile (from `--cpu-prof`, which
// `npm run bench -- --cpu-prof` passes to every server it starts).
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'

const [file, top = '25'] = process.argv.slice(2)
if (!file) {
  console.error('usage: node bench/profile-summary.mjs <file.cpuprofile> [top]')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const self = new Map()
// timeDeltas[i] is the time before samples[i] was taken: attribute it to that sample's node.
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i])
  const { functionName, url, lineNumber } = node.callFrame
  const where = url ? `${relative(process.cwd(), url.replace(/^file:\/\//, ''))}:${lineNumber + 1}` : ''
  let key = `${functionName || '(anonymous)'} ${where}`.trim()
  // The bench server starts its profile through node:inspector: those samples are that call.
  if (key === 'dispatch') key = 'dispatch (node:inspector starting this profile)'
  self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const total = [...self.values()].reduce((a, b) => a + b, 0)
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(top))
console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled`)
for (const [key, us] of rows) console.log(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(1).padStart(8)} ms  ${key}`)
