// Builds dist/esm (ES modules) and dist/cjs (CommonJS) with declarations from lib/, using
// plain tsc twice. The CommonJS entry is then rewritten so that `require('fastify-conduit')`
// returns the plugin itself (like every Fastify plugin), with its types written as
// `export = fastifyConduit` plus a namespace of the named exports, which attw checks.
import { execFileSync } from 'node:child_process'
import { rmSync, writeFileSync, appendFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..')
const require = createRequire(import.meta.url)
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
const run = (...args) => execFileSync(process.execPath, [tsc, ...args], { cwd: root, stdio: 'inherit' })

rmSync(join(root, 'dist'), { recursive: true, force: true })
run('-p', 'tsconfig.build.json')
run('-p', 'tsconfig.build.json', '--outDir', 'dist/cjs', '--module', 'commonjs',
  '--moduleResolution', 'node10', '--ignoreDeprecations', '6.0')
writeFileSync(join(root, 'dist/cjs/package.json'), '{ "type": "commonjs" }\n')

// Runtime: module.exports = plugin, with every named export (and `default`) as a property.
appendFileSync(join(root, 'dist/cjs/index.js'),
  '\nmodule.exports = Object.assign(exports.default, exports);\n')

// Types: the names index.ts exports, read with the compiler API. Values become
// `export import name = api.name`; type-only exports cannot (TS1379: an import alias cannot
// reference a declaration exported with `export type`, reported in index.d.ts to every user
// who compiles with skipLibCheck: false), so they are imported with `import type` and
// re-exported from the namespace, which keeps them type-only (Channel is a class users never
// construct) and keeps their type parameters.
const ts = require('typescript')
const entry = join(root, 'lib/index.ts')
const program = ts.createProgram([entry], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: ['node'] })
const checker = program.getTypeChecker()
const exported = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(entry)))
  .filter((symbol) => symbol.getName() !== 'default')
const isTypeOnly = (symbol) => symbol.declarations.some((declaration) => ts.isTypeOnlyImportOrExportDeclaration(declaration))
const values = exported.filter((symbol) => !isTypeOnly(symbol)).map((symbol) => symbol.getName())
const types = exported.filter(isTypeOnly).map((symbol) => symbol.getName())
const lines = [
  "import * as api from './api.js'",
  `import type { ${types.join(', ')} } from './api.js'`,
  "import plugin from './plugin.js'",
  'type FastifyConduit = typeof plugin',
  'declare function fastifyConduit (...params: Parameters<FastifyConduit>): ReturnType<FastifyConduit>',
  'declare namespace fastifyConduit {',
  ...values.map((name) => `  export import ${name} = api.${name}`),
  `  export { ${types.join(', ')} }`,
  '  export { fastifyConduit as default }',
  '}',
  'export = fastifyConduit',
  ''
]
// api.d.ts is the ES-style barrel the namespace reads from; index.d.ts is what users see.
execFileSync('cp', [join(root, 'dist/cjs/index.d.ts'), join(root, 'dist/cjs/api.d.ts')])
writeFileSync(join(root, 'dist/cjs/index.d.ts'), lines.join('\n'))
