// Type-checks consumer projects against fastify-conduit's built declarations, for
// test/package/declarations.test.ts, which runs it in a child process without tap's coverage
// hooks (the compiler runs several times slower under them).
//
// stdin: { root, dir, cases: [{ name, files, options }] }, options in tsconfig.json form.
// stdout: [{ name, diagnostics, checked }]: the formatted diagnostics of the consumers' files
// and of every declaration file under <root>/dist/, and how many of those were read.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { readFileSync } from 'node:fs'

const { root, dir, cases } = JSON.parse(readFileSync(0, 'utf8'))
const ts = createRequire(join(root, 'package.json'))('typescript')

// Parsing fastify's, Node's and TypeBox's declarations once for every case saves seconds.
const parsed = new Map()
function host (options) {
  const base = ts.createCompilerHost(options)
  return {
    ...base,
    getSourceFile (fileName, languageVersion, onError, fresh) {
      const key = `${fileName}\0${JSON.stringify(languageVersion)}`
      if (!parsed.has(key)) parsed.set(key, base.getSourceFile(fileName, languageVersion, onError, fresh))
      return parsed.get(key)
    }
  }
}

const dist = join(root, 'dist') + '/'
const format = {
  getCanonicalFileName: (file) => file,
  getCurrentDirectory: () => dir,
  getNewLine: () => '\n'
}

const results = cases.map(({ name, files, options: json }) => {
  const { options, errors } = ts.convertCompilerOptionsFromJson(json, dir)
  const program = ts.createProgram(files, options, host(options))
  // Ours and the consumers' files are checked in full (skipLibCheck: false); other packages'
  // declarations are theirs to check, and checking them all would take several times longer.
  const checked = program.getSourceFiles()
    .filter((file) => file.fileName.startsWith(dist) || file.fileName.startsWith(dir))
  const diagnostics = [
    ...errors,
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...checked.flatMap((file) => [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)])
  ]
  return {
    name,
    diagnostics: ts.formatDiagnostics(diagnostics, format),
    checked: checked.filter((file) => file.fileName.startsWith(dist)).length
  }
})
process.stdout.write(JSON.stringify(results))
