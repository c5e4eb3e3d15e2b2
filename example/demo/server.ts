// The demo: every example's routes on one server, and one page that shows them all live.
// `npm start` serves it on http://127.0.0.1:3000 (PORT and HOST override). With REDIS_URL set,
// the bus is Redis: channels (the notifications), resumable chat answers and the MCP endpoint's
// streams are shared by several demo processes.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fastifyConduit, { memoryBus } from 'fastify-conduit'
import { redisBus } from 'fastify-conduit/redis'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { aiChat } from '../ai-chat.ts'
import { mcp } from '../mcp.ts'
import { metrics } from '../metrics.ts'
import { notifications } from '../notifications.ts'
import { openAiCompatible } from '../openai-compatible.ts'
import { progress } from '../progress.ts'
import { simpleServer } from '../simple-server.ts'

export interface DemoOptions {
  /** Fastify's logger option. Default false. */
  logger?: FastifyServerOptions['logger']
  /** A Redis URL: the bus (channels, resumable answers, MCP streams) is shared by every demo on that Redis. Default: in-memory. */
  redisUrl?: string
}

const PUBLIC = join(import.meta.dirname, 'public')
const FILES = [
  { url: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { url: '/style.css', file: 'style.css', type: 'text/css; charset=utf-8' },
  { url: '/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' }
]

/** The demo app, with every route registered and not listening yet. */
export async function buildDemo ({ logger = false, redisUrl }: DemoOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  // Channels, resumable answers and MCP streams all live on it.
  const bus = redisUrl === undefined ? memoryBus() : redisBus({ url: redisUrl, prefix: 'conduit-demo:' })
  // retry: after a drop (a server restart), browsers try again after one second.
  // lastEventIdQuery: after a reload, the page passes the last id it stored as ?lastEventId=.
  await app.register(fastifyConduit, {
    retry: 1000,
    lastEventIdQuery: 'lastEventId',
    bus
  })
  await app.register(simpleServer)
  await app.register(aiChat)
  await app.register(progress)
  await app.register(notifications)
  await app.register(metrics)
  await app.register(mcp, { bus })
  await app.register(openAiCompatible)

  // Three small files, read once: no build step, nothing from a CDN.
  for (const { url, file, type } of FILES) {
    const body = await readFile(join(PUBLIC, file))
    app.get(url, (request, reply) => reply.type(type).header('cache-control', 'no-cache').send(body))
  }
  return app
}

if (import.meta.filename === process.argv[1]) {
  const app = await buildDemo({ logger: true, redisUrl: process.env.REDIS_URL })
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.log.info({ signal }, 'closing')
      app.close().then(() => process.exit(0), () => process.exit(1))
    })
  }
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
