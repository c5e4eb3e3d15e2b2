// Progress of a long-running job: GET /download sends `progress` events from 0 to 100 %.
// Run it with `npx tsx example/progress.ts`, then `curl -N http://127.0.0.1:3000/download`.
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import fastifyConduit from 'fastify-conduit'
import { setTimeout as sleep } from 'node:timers/promises'

export const Progress = Type.Object({
  progress: Type.Integer({ minimum: 0, maximum: 100 }),
  status: Type.Union([Type.Literal('downloading'), Type.Literal('done')]),
  message: Type.String()
})

const FILES = ['index.html', 'style.css', 'app.js', 'logo.svg', 'data.json']

export interface ProgressOptions {
  /** Milliseconds per 5 % step. Default 200. */
  interval?: number
}

export const progress: FastifyPluginAsync<ProgressOptions> = async (app, { interval = 200 }) => {
  app.get('/download', { schema: { sse: { progress: Progress } } }, (request, reply) => {
    // The id is the percentage reached: a client that reconnects continues from there.
    const after = Number.parseInt(String(request.headers['last-event-id']), 10)
    const from = Number.isSafeInteger(after) && after >= 0 ? after - (after % 5) + 5 : 0
    if (from > 100) return reply.code(204).send()
    return reply.sse(async function * ({ signal }) {
      for (let percent = from; percent <= 100; percent += 5) {
        if (percent > from) await sleep(interval, undefined, { signal })
        const file = FILES[Math.min(FILES.length - 1, Math.floor(percent / (100 / FILES.length)))]
        yield {
          event: 'progress',
          id: percent,
          data: percent === 100
            ? { progress: 100, status: 'done', message: `${FILES.length} files downloaded` }
            : { progress: percent, status: 'downloading', message: `Downloading ${file}` }
        }
      }
    })
  })
}

if (import.meta.filename === process.argv[1]) {
  const app = Fastify({ logger: true })
  await app.register(fastifyConduit)
  await app.register(progress)
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
