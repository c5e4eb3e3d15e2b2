// `npm run test:unit`: tap, with a Redis to test against. A newcomer without one must not see
// a red run, and CI must never pass without Redis:
// - Redis answers at REDIS_URL (default redis://127.0.0.1:6379): tap runs as it is.
// - It does not, and redis-server is installed: one is started on a free port for this run
//   (no persistence, removed afterwards) and REDIS_URL points the tests at it.
// - Neither, outside CI: the Redis tests skip with a message, and lib/redis/ is left out of the
//   coverage gate (it could not run), which this script says before and after tap's report.
//   The same holds when Redis answers but there is no redis-server binary for the restart tests.
// - In CI (CI=true) nothing is left out: the Redis tests fail without Redis.
// REDIS_SERVER names the redis-server binary (default: redis-server on PATH).
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..')
const ci = process.env.CI === 'true'
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const serverBinary = process.env.REDIS_SERVER ?? 'redis-server'
const env = { ...process.env }
const notes = []
let redis

const hasServer = spawnSync(serverBinary, ['--version']).status === 0
let reachable = await answers(url)
if (!reachable && hasServer) {
  const port = await freePort()
  redis = await startRedis(port)
  env.REDIS_URL = `redis://127.0.0.1:${port}`
  reachable = true
  notes.push(`no Redis answered at ${url}: started ${serverBinary} on port ${port} for this run (REDIS_URL=${env.REDIS_URL})`)
}
if (!ci && (!reachable || !hasServer)) {
  env.CONDUIT_COVERAGE_EXCLUDE = 'lib/redis/'
  const missing = [!reachable && `no Redis answers at ${url}`, !hasServer && `no redis-server binary (${serverBinary})`].filter(Boolean).join(' and ')
  notes.push(`${missing}: the Redis tests that need it are SKIPPED and lib/redis/ is LEFT OUT of the coverage gate.` +
    ' Install Redis (or set REDIS_URL / REDIS_SERVER) to run them; CI=true requires them.')
}
say()

const tap = spawn(join(root, 'node_modules', '.bin', 'tap'), process.argv.slice(2), { cwd: root, env, stdio: 'inherit' })
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => tap.kill(signal))
const [code, signal] = await once(tap, 'exit')
if (redis !== undefined) {
  redis.kill('SIGTERM')
  await once(redis, 'exit')
}
say()
process.exit(code ?? (signal === null ? 1 : 128))

function say () {
  for (const note of notes) console.error(`\n*** fastify-conduit tests: ${note}\n`)
}

/** True when something at `url` answers a PING like Redis (an auth error counts: it is Redis). */
async function answers (url) {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port || 6379), hostname.replace(/^\[|\]$/g, ''))
  socket.setTimeout(1000)
  try {
    await once(socket, 'connect')
    socket.write('PING\r\n')
    const [reply] = await once(socket, 'data')
    return /^[+-]/.test(reply.toString())
  } catch {
    return false
  } finally {
    socket.destroy()
  }
}

async function freePort () {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  await once(server, 'close')
  return port
}

async function startRedis (port) {
  const child = spawn(serverBinary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  await new Promise((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`${serverBinary} exited (${code}): ${output}`)))
    child.stdout.on('data', (chunk) => {
      output += chunk
      if (output.includes('Ready to accept connections')) resolve()
    })
  })
  child.removeAllListeners('exit')
  child.stdout.resume()
  return child
}
