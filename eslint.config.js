import { builtinModules } from 'node:module'
import neostandard from 'neostandard'

// The import direction of STYLE.md, enforced: a violation fails `npm run lint`.
// Node's built-in modules, as `node:fs` and as bare `fs` (their names are plain [a-z0-9_/]).
const builtins = builtinModules.filter((name) => !name.startsWith('node:')).join('|')
const noNode = [{ regex: `^(node:.*|(${builtins})(/.*)?)$`, message: "Node's built-in modules are not available here." }]

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', '.tap/**', 'coverage/**', 'bench/results/**'] }),
  {
    // The wire core is pure: the server and the client (in browsers) both build on it.
    files: ['lib/wire/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { regex: '^(?!\\./)', message: 'lib/wire imports nothing but its own files: no package, no Node, nothing else of ours.' }
        ]
      }]
    }
  },
  {
    // fastify-conduit/client runs in browsers and stands apart from the server.
    files: ['lib/client/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          ...noNode,
          { regex: '^(fastify|fastify-plugin|@fastify/.*)$', message: 'The client imports nothing of Fastify.' },
          { regex: '^\\.\\./(?!wire/)', message: 'The client imports only lib/client and lib/wire, nothing server-side.' }
        ]
      }],
      // no-restricted-imports does not look at import(): a dynamic import of a built-in too.
      'no-restricted-syntax': ['error', {
        selector: `ImportExpression > Literal[value=/^(node:.*|(${builtins.replaceAll('/', '\\/')})(\\/.*)?)$/]`,
        message: "Node's built-in modules are not available here."
      }]
    }
  },
  {
    // The Redis bus builds on channels, never the other way round (and ioredis is optional).
    files: ['lib/channel/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '^(\\.\\./redis(/.*)?|ioredis)$', message: 'lib/channel never imports lib/redis or ioredis.' }]
      }]
    }
  }
]
