// The browser bundle size of fastify-conduit/client: lib/client bundled for the browser with
// its dependencies (TypeBox), minified, then gzipped, as a page would load it. esbuild comes
// with tsx (a devDependency); nothing is written to disk.
//
//   node scripts/client-size.mjs    # prints the figures the README's Client section cites
import { gzipSync, brotliCompressSync } from 'node:zlib'
import { join } from 'node:path'
import { build } from 'esbuild'

const root = join(import.meta.dirname, '..')
const result = await build({
  entryPoints: [join(root, 'lib/client/index.ts')],
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  write: false,
  metafile: true,
  logLevel: 'error'
})
const code = result.outputFiles[0].contents
const [output] = Object.values(result.metafile.outputs)
let own = 0
for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
  if (!input.includes('node_modules')) own += bytesInOutput
}
const kB = (bytes) => `${(bytes / 1024).toFixed(1)} kB`
const minified = code.length
const gzip = gzipSync(code, { level: 9 }).length
const brotli = brotliCompressSync(code).length
console.log('fastify-conduit/client, bundled for the browser (esbuild, ES2022, minified):')
console.log(`  minified: ${kB(minified)} (${minified} bytes), of which lib/client and lib/wire ${kB(own)}, TypeBox ${kB(minified - own)}`)
console.log(`  gzip:     ${kB(gzip)} (${gzip} bytes)`)
console.log(`  brotli:   ${kB(brotli)} (${brotli} bytes)`)
