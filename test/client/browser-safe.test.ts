// The client runs in browsers: it may import only its own modules and TypeBox, and use no
// Node globals. This reads the sources, since Node itself would not notice.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'tap'

const dir = join(import.meta.dirname, '..', '..', 'lib', 'client')

test('lib/client imports only itself and TypeBox, and uses no Node globals', async (t) => {
  const files = readdirSync(dir).filter((name) => name.endsWith('.ts'))
  t.ok(files.length >= 5)
  for (const file of files) {
    // Comments out: the TSDoc examples show user code.
    const code = readFileSync(join(dir, file), 'utf8').replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '')
    const specifiers = [...code.matchAll(/\bfrom\s+'([^']+)'|\bimport\s*\(\s*'([^']+)'/g)].map((m) => m[1] ?? m[2])
    for (const specifier of specifiers) {
      t.ok(/^\.\/[\w-]+\.js$/.test(specifier) || /^@sinclair\/typebox(\/\w+)?$/.test(specifier), `${file}: ${specifier}`)
    }
    t.notMatch(code, /\b(Buffer|process|require|__dirname|setImmediate)\b|\bglobal\./, `${file}: no Node globals`)
  }
})
