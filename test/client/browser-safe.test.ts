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

test('the linter refuses a Node built-in in lib/client, in every spelling', async (t) => {
  const { ESLint } = await import('eslint')
  const eslint = new ESLint({ cwd: join(lib, '..') })
  const imports = [
    "import { readFileSync } from 'node:fs'",
    "import { Buffer } from 'buffer'",
    "import { setTimeout } from 'node:timers/promises'",
    "import { EventEmitter } from 'events'",
    "export { createHash } from 'node:crypto'",
    "import fastify from 'fastify'",
    "import { GAP_FRAME } from '../channel/channel.js'",
    "export const load = () => import('node:fs')",
    "export const load = () => import('fs/promises')"
  ]
  for (const line of imports) {
    const [result] = await eslint.lintText(`${line}\n`, { filePath: join(lib, 'client', 'probe.ts') })
    const rules = result.messages.map((message) => message.ruleId)
    t.ok(rules.includes('no-restricted-imports') || rules.includes('no-restricted-syntax'), `${line}: ${JSON.stringify(rules)}`)
  }
  // The same lines pass elsewhere (lib/stream may use Node), and the client's own imports pass.
  const [server] = await eslint.lintText("import { readFileSync } from 'node:fs'\n\nexport const read = readFileSync\n", { filePath: join(lib, 'stream', 'probe.ts') })
  t.same(server.messages, [])
  const [client] = await eslint.lintText("import { assertId } from '../wire/guards.js'\n\nexport const check = assertId\nexport const load = () => import('./parser.js')\n", { filePath: join(lib, 'client', 'probe.ts') })
  t.same(client.messages, [])
})
