import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { Teardown } from '../support/index.js'

/** The Redis the tests use: 127.0.0.1:6379 unless REDIS_URL says otherwise. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** The redis-server binary the restart tests start: REDIS_SERVER, else redis-server on PATH. */
export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server'

/** In CI (CI=true) missing Redis is a failure; elsewhere the Redis tests are skipped, visibly. */
export const REQUIRE_REDIS = process.env.CI === 'true'

/** A plain client for the tests' own checks; no retries, so a missing server fails fast. */
export function testClient (url = REDIS_URL): Redis {
  const client = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 2000 })
  client.on('error', () => {})
  return client
}

/** A testClient of the tests' Redis, connected, and quit when the test ends. */
export async function connectedClient (t: Teardown): Promise<Redis> {
  const client = testClient()
  await client.connect()
  t.teardown(() => client.quit())
  return client
}

export async function redisReachable (url = REDIS_URL): Promise<boolean> {
  const client = testClient(url)
  try {
    await client.connect()
    await client.ping()
    return true
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

interface Skippable {
  fail (message: string): void
  skip (name: string, cb: () => void): unknown
}

/**
 * True when Redis answers. Otherwise fails the file under CI=true, or skips it with a
 * visible reason (there is no Redis to test against on this machine).
 */
export async function needRedis (t: Skippable): Promise<boolean> {
  if (await redisReachable()) return true
  const reason = `Redis tests need a server at ${REDIS_URL} (set REDIS_URL)`
  if (REQUIRE_REDIS) t.fail(reason + ', and CI=true requires them')
  else t.skip(reason, () => {})
  return false
}

/** A key prefix of its own for one test file, so runs never meet; see deleteKeys. */
export function testPrefix (): string {
  return `conduit-test:${randomBytes(6).toString('hex')}:`
}

/** Deletes every key under `prefix`. */
export async function deleteKeys (prefix: string, url = REDIS_URL): Promise<void> {
  const client = testClient(url)
  try {
    await client.connect()
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', prefix + '*', 'COUNT', 1000)
      if (keys.length > 0) await client.del(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
}

/** True when the redis-server binary runs (tests that start their own Redis need it). */
export const hasRedisServer = spawnSync(REDIS_SERVER, ['--version']).status === 0

/**
 * True when the redis-server binary runs, for the tests that start their own (`what` names
 * them). Otherwise fails the file under CI=true, or skips it with a visible reason.
 */
export function needRedisServer (t: Skippable, what: string): boolean {
  if (hasRedisServer) return true
  const reason = `no redis-server binary on PATH (or REDIS_SERVER) for ${what}`
  if (REQUIRE_REDIS) t.fail(reason + ', and CI=true requires it')
  else t.skip(reason, () => {})
  return false
}

/**
 * A redis-server child of this test on `port` (never the shared one), without persistence
 * unless `args` say otherwise; resolved once it accepts connections.
 */
export async function startRedis (port: number, args: string[] = []): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`redis-server exited (${code}): ${output}`)))
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve()
    })
  })
  child.removeAllListeners('exit')
  child.stdout?.resume()
  return child
}

/** Kills a redis-server started by startRedis (SIGKILL: as a crash would). */
export async function killRedis (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

/** A directory of its own for a redis-server's AOF, removed when the test ends. */
export function redisDir (t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'conduit-redis-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Stops a redis-server started by startRedis as an operator would: SHUTDOWN (AOF written), then its exit. */
export async function shutdownRedis (child: ChildProcess, port: number): Promise<void> {
  const exited = once(child, 'exit')
  const client = testClient(`redis://127.0.0.1:${port}`)
  await client.connect()
  // Redis closes the connection instead of answering.
  await client.shutdown().catch(() => {})
  client.disconnect()
  await exited
}

/**
 * A TCP proxy in front of a Redis, to lose replies as a network would: while `holdReplies` is
 * set, what Redis answers is dropped; `cut()` then closes every connection (as a dropped link),
 * and clients reconnect through the proxy.
 */
export interface ReplyDroppingProxy {
  readonly url: string
  holdReplies: boolean
  cut (): void
}

export async function replyDroppingProxy (t: Teardown, redisPort: number): Promise<ReplyDroppingProxy> {
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const redis = connect(redisPort, '127.0.0.1')
    sockets.add(client).add(redis)
    client.on('data', (chunk) => redis.write(chunk))
    redis.on('data', (chunk) => { if (!proxy.holdReplies) client.write(chunk) })
    for (const [socket, other] of [[client, redis], [redis, client]]) {
      socket.on('error', () => {})
      socket.on('close', () => {
        sockets.delete(socket)
        other.destroy()
      })
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const proxy: ReplyDroppingProxy = {
    url: `redis://127.0.0.1:${(server.address() as { port: number }).port}`,
    holdReplies: false,
    cut () {
      for (const socket of sockets) socket.destroy()
    }
  }
  t.teardown(async () => {
    proxy.cut()
    server.close()
    await once(server, 'close')
  })
  return proxy
}
