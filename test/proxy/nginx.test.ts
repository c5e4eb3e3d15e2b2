import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EventSource } from 'eventsource'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import { buildDemo } from '../../example/demo/server.ts'
import { EventReader, deferred, eventually, freePort, within } from '../support/index.js'

// The demo behind Debian's nginx, configured with the README's file (example/nginx/conduit.conf)
// changed only where a test must: its ports and a 2 s proxy_read_timeout. Events must arrive
// live, a stream idle for longer than the timeout must survive on heartbeats (and one without
// heartbeats must be cut, or the test proves nothing), and EventSource must resume with
// Last-Event-ID through the proxy.

const NGINX = process.env.NGINX ?? '/usr/sbin/nginx'
const CONFIG = join(import.meta.dirname, '..', '..', 'example', 'nginx', 'conduit.conf')
const READ_TIMEOUT = '2s'
const HEARTBEAT = 500
/** Only turns a hang into a failure: each wait below takes milliseconds, or READ_TIMEOUT. */
const BOUND = 15_000

/** Replaces the one occurrence of `from` in `text`: a documented line that changed fails here. */
function replaceOnce (text: string, from: string, to: string): string {
  const count = text.split(from).length - 1
  if (count !== 1) throw new Error(`example/nginx/conduit.conf: expected "${from}" once, found it ${count} times`)
  return text.replace(from, to)
}

interface Nginx {
  url: string
  /** What nginx wrote to its error log so far. */
  errors (): Promise<string>
}

/**
 * nginx in the foreground, as the current user, with everything it writes in a temp dir,
 * proxying to `upstream` with the documented server block after `edit`. Stopped (and its dir
 * removed) when the test ends.
 */
async function startNginx (t: Test, upstream: number, edit: (config: string) => string = (config) => config): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), 'conduit-nginx-'))
  // Run as root, nginx's workers are `nobody`: they must be able to reach the temp dirs.
  await chmod(dir, 0o755)
  const port = await freePort()
  let server = await readFile(CONFIG, 'utf8')
  server = replaceOnce(server, 'server 127.0.0.1:3000;', `server 127.0.0.1:${upstream};`)
  server = replaceOnce(server, 'listen 80;', `listen 127.0.0.1:${port};`)
  server = replaceOnce(server, 'proxy_read_timeout 60s;', `proxy_read_timeout ${READ_TIMEOUT};`)
  await writeFile(join(dir, 'conduit.conf'), edit(server))
  const errorLog = join(dir, 'error.log')
  await writeFile(join(dir, 'nginx.conf'), `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${errorLog} info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/conduit.conf;
}
`)
  // -e: the log for messages before the configuration is read (Debian's is /var/log/nginx).
  const nginx = spawn(NGINX, ['-p', dir + '/', '-c', join(dir, 'nginx.conf'), '-e', errorLog], { stdio: ['ignore', 'inherit', 'inherit'] })
  const exited = once(nginx, 'exit')
  // Should this process die first, nginx must not outlive it.
  const stop = (): void => { nginx.kill('SIGTERM') }
  process.once('exit', stop)
  t.teardown(async () => {
    process.removeListener('exit', stop)
    if (nginx.exitCode === null && nginx.signalCode === null) {
      stop()
      await exited
    }
    await rm(dir, { recursive: true, force: true })
  })
  const errors = async (): Promise<string> => await readFile(errorLog, 'utf8').catch(() => '')
  if (!await within(listening(port, nginx), BOUND) || nginx.exitCode !== null) {
    throw new Error(`nginx did not start: ${await errors()}`)
  }
  return { url: `http://127.0.0.1:${port}`, errors }
}

/** Resolves once `port` accepts a connection; rejects if nginx exits first. */
async function listening (port: number, nginx: ChildProcess): Promise<void> {
  while (nginx.exitCode === null) {
    const socket = connect(port, '127.0.0.1')
    const up = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true))
      socket.once('error', () => resolve(false))
    })
    socket.destroy()
    if (up) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error('nginx exited')
}

/**
 * The pace of one /test/live stream: after each event its source waits until the client has
 * confirmed receiving it, or until the test lets the source run free.
 */
class Pace {
  readonly #waiting: Array<() => void> = []
  #free = false

  async next (signal: AbortSignal): Promise<void> {
    if (this.#free || signal.aborted) return
    const { promise, resolve } = deferred()
    this.#waiting.push(resolve)
    signal.addEventListener('abort', () => resolve())
    await promise
  }

  confirm (): void {
    this.#waiting.shift()?.()
  }

  free (): void {
    this.#free = true
    for (const resolve of this.#waiting.splice(0)) resolve()
  }
}

/**
 * The test's own routes, registered on the demo: a stream whose source waits for the client
 * to confirm each event before producing the next, and an idle stream with or without
 * heartbeats that sends its second event when the test says so.
 */
function testRoutes (paces: Map<string, Pace>, releases: Map<string, () => void>): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Params: { name: string }, Querystring: { buffering?: string } }>('/test/live/:name', (request, reply) => {
      const pace = new Pace()
      paces.set(request.params.name, pace)
      if (request.query.buffering !== undefined) reply.header('x-accel-buffering', request.query.buffering)
      return reply.sse(async function * ({ signal }) {
        for (let n = 1; n <= 5; n++) {
          yield { event: 'tick', id: n, data: { n } }
          await pace.next(signal)
        }
      })
    })

    app.get<{ Params: { name: string }, Querystring: { heartbeat: string } }>('/test/idle/:name', (request, reply) => {
      const { promise, resolve } = deferred()
      releases.set(request.params.name, resolve)
      const heartbeat = request.query.heartbeat === 'off' ? false : Number(request.query.heartbeat)
      return reply.sse(async function * ({ signal }) {
        yield { event: 'open', data: 'idle from here' }
        signal.addEventListener('abort', () => resolve())
        await promise
        yield { event: 'after', data: 'still here' }
      }, { heartbeat })
    })
  }
}

/** The directives of an nginx configuration, comments and layout left out. */
function directives (config: string): string[] {
  return config.split('\n').map((line) => line.replace(/#.*/, '').trim()).filter((line) => line !== '')
}

async function proxyTests (): Promise<void> {
  await t.test('the README shows the configuration file, directive for directive', async (t) => {
    const readme = await readFile(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8')
    const shown = /```nginx\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
    t.same(directives(shown), directives(await readFile(CONFIG, 'utf8')))
  })

  const paces = new Map<string, Pace>()
  const releases = new Map<string, () => void>()
  const lastEventIds: Array<string | undefined> = []
  let app: FastifyInstance
  let nginx: Nginx

  t.before(async () => {
    app = await buildDemo()
    await app.register(testRoutes(paces, releases))
    app.addHook('onRequest', async (request) => {
      if (request.url === '/notifications' && request.method === 'GET') lastEventIds.push(request.headers['last-event-id'] as string | undefined)
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
  })
  t.teardown(async () => {
    for (const release of releases.values()) release()
    for (const pace of paces.values()) pace.free()
    await app.close()
  })
  t.before(async () => {
    nginx = await startNginx(t, (app.server.address() as AddressInfo).port)
  })

  /**
   * Reads /test/live/<name> through `url`: each event must arrive while the source waits for
   * the client's confirmation of it, so no later event can push it through a buffer.
   */
  async function readLive (t: Test, url: string, name: string): Promise<number> {
    const reader = await EventReader.fetch(`${url}/test/live/${name}`)
    t.teardown(() => reader.abort())
    let live = 0
    for (let n = 1; n <= 5; n++) {
      if (!await reader.received(n, BOUND)) break
      live = n
      paces.get(name)?.confirm()
    }
    return live
  }

  await t.test('events arrive live through nginx: each one before the source produces the next', async (t) => {
    t.equal(await readLive(t, nginx.url, 'documented'), 5, 'all five, one at a time')
  })

  await t.test("X-Accel-Buffering: no keeps streams live even under nginx's defaults", async (t) => {
    // nginx's defaults: HTTP/1.0 to the upstream and buffering on. A response it may buffer
    // is then held back, head and body, until it ends. (A longer read timeout than the other
    // tests': the control below holds a stream idle for a while.)
    const defaults = await startNginx(t, (app.server.address() as AddressInfo).port, (config) => {
      for (const line of ['proxy_http_version 1.1;', "proxy_set_header Connection '';", 'proxy_buffering off;']) config = replaceOnce(config, line, '')
      return replaceOnce(config, `proxy_read_timeout ${READ_TIMEOUT};`, 'proxy_read_timeout 60s;')
    })
    t.equal(await readLive(t, defaults.url, 'defaults'), 5, 'all five, one at a time')

    // The control, which proves that the reading above can fail: the same stream, but allowing
    // buffering, is held back by nginx. Its source waits for the client, so nothing arrives
    // until the test lets the source run to its end; then all of it comes at once.
    const reading = EventReader.fetch(`${defaults.url}/test/live/buffered?buffering=yes`)
    t.teardown(async () => { await (await reading).abort() })
    t.notOk(await within(reading.then((reader) => reader.received(1, BOUND)), 1000), 'nothing arrives while nginx buffers')
    paces.get('buffered')?.free()
    const reader = await reading
    t.ok(await reader.end(BOUND), 'the response ends')
    t.same(reader.events.map(({ data }) => JSON.parse(data).n), [1, 2, 3, 4, 5], 'all of it, once the response ended')
  })

  await t.test('a stream idle for longer than proxy_read_timeout survives on heartbeats; one without is cut', async (t) => {
    const beating = await EventReader.fetch(`${nginx.url}/test/idle/beating?heartbeat=${HEARTBEAT}`)
    t.teardown(() => beating.abort())
    t.ok(await beating.received(1, BOUND), 'the stream with heartbeats is open')
    const silent = await EventReader.fetch(`${nginx.url}/test/idle/silent?heartbeat=off`)
    t.teardown(() => silent.abort())
    t.ok(await silent.received(1, BOUND), 'the stream without heartbeats is open')

    // The stream without heartbeats was idle for proxy_read_timeout: nginx ends it. The other
    // one has been idle since before it opened, so for longer.
    t.ok(await silent.end(BOUND), 'nginx cut the stream without heartbeats')
    t.match(await nginx.errors(), /upstream timed out .* while reading upstream/, 'because of proxy_read_timeout')
    t.notOk(beating.ended, 'the stream with heartbeats is still open')
    releases.get('beating')?.()
    t.ok(await beating.received(2, BOUND), 'and its next event arrives')
    t.same(beating.events.map(({ event }) => event), ['open', 'after'])
  })

  await t.test('Last-Event-ID passes through nginx: EventSource resumes the demo\'s channel', async (t) => {
    const events = new EventSource(`${nginx.url}/notifications`)
    t.teardown(() => events.close())
    const titles: string[] = []
    events.addEventListener('notification', (event) => titles.push(JSON.parse(event.data).title))
    const arrived = (count: number): Promise<boolean> => eventually(() => titles.length >= count, BOUND)
    await within(once(events, 'open'), BOUND)
    const publish = async (title: string): Promise<string> => {
      const response = await fetch(`${nginx.url}/notifications`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title })
      })
      return (await response.json() as { id: string }).id
    }
    await publish('one')
    const two = await publish('two')
    t.ok(await arrived(2), 'the first two arrive')

    // The demo's streams beat every 15 s, so nginx (2 s here) cuts this idle one; EventSource
    // reconnects with the last id it saw. What is published meanwhile must come exactly once.
    t.ok(await within(new Promise((resolve) => { events.onerror = resolve }), BOUND), 'nginx cut the idle stream')
    await publish('three')
    await publish('four')
    t.ok(await arrived(4), 'and the next two, after the reconnection')
    t.same(titles, ['one', 'two', 'three', 'four'], 'each exactly once')
    t.same(lastEventIds, [undefined, two], 'the reconnection sent the last id it saw through nginx')

    // And a fetch with Last-Event-ID gets what came after it, replayed by the channel.
    const reader = await EventReader.fetch(`${nginx.url}/notifications`, { 'last-event-id': two })
    t.teardown(() => reader.abort())
    t.ok(await reader.received(2, BOUND), 'a replay through nginx')
    t.same(reader.events.slice(0, 2).map(({ data }) => JSON.parse(data).title), ['three', 'four'])
  })
}

if (!existsSync(NGINX)) {
  const reason = `the proxy tests need nginx at ${NGINX} (set NGINX, or apt-get install nginx)`
  if (process.env.CI === 'true') t.fail(reason + ', and CI=true requires it')
  else t.skip(reason, () => {})
} else {
  await proxyTests()
}
