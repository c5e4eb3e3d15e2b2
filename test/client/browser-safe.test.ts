// The client runs in browsers: it may import only its own modules, the wire core (which imports
// nothing) and TypeBox, and use no Node globals. This reads the sources, since Node itself would
// not notice; eslint.config.js enforces the same import rules at lint time.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'tap'

const lib = join(import.meta.dirname, '..', '..', 'lib')

const sources = (dir: string): string[] => readdirSync(dir).filter((name) => name.endsWith('.ts')).map((name) => join(dir, name))

test('lib/client imports only itself, lib/wire and TypeBox; lib/wire imports only itself; neither uses Node globals', async (t) => {
  const files = [...sources(join(lib, 'client')), ...sources(join(lib, 'wire'))]
  t.ok(files.length >= 9)
  for (const file of files) {
    const client = file.includes(join('lib', 'client'))
    // Comments out: the TSDoc examples show user code.
    const code = readFileSync(file, 'utf8').replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '')
    const specifiers = [...code.matchAll(/\bfrom\s+'([^']+)'|\bimport\s*\(\s*'([^']+)'/g)].map((m) => m[1] ?? m[2])
    for (const specifier of specifiers) {
      const allowed = /^\.\/[\w-]+\.js$/.test(specifier) ||
        (client && (/^\.\.\/wire\/[\w-]+\.js$/.test(specifier) || /^@sinclair\/typebox(\/\w+)?$/.test(specifier)))
      t.ok(allowed, `${file}: ${specifier}`)
    }
    t.notMatch(code, /\b(Buffer|process|require|__dirname|setImmediate)\b|\bglobal\./, `${file}: no Node globals`)
  }
})
