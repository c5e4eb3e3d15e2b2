import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { connect } from '../../lib/client/index.ts'
import { redisBus } from '../../lib/redis/index.js'
import { eventually, freePort, startApp, uniqueName } from '../support/index.js'
import { killRedis, needRedisServer, redisDir, shutdownRedis, startRedis, testPrefix } from './helpers.js'

// A resumable stream whose Redis restarts (AOF, same directory) while its source generates on
// instance A: the source goes on (its appends wait for Redis, within publishTimeout), and
// readers connected on A and on B with our client, and one arriving after the end, get every
// event exactly once and the end.

const Token = Type.Object({ text: Type.String() })
const Done = Type.Object({ tokens: Type.Integer() })
const events = { token: Token, done: Done }
const TOKENS = 300

async function readAll (url: string): Promise<string[]> {
  const texts: string[] = []
  // After the end the server answers 204, on which the client stops.
  for await (const ev of connect(url, { events, idleTimeout: false, reconnect: { minDelay: 10, maxDelay: 100 } })) {
    texts.push(ev.event === 'token' ? ev.data.text : `done:${ev.data.tokens}`)
  }
  return texts
}

if (needRedisServer(t, 'the resumable-stream restart test')) {
  t.test('Redis restarted (AOF) mid-generation: the record is complete, readers get every event once and the end', async (t) => {
    const port = await freePort()
    const dir = redisDir(t)
    const args = ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir]
    let redis = await startRedis(port, args)
    t.teardown(() => killRedis(redis))
    const url = `redis://127.0.0.1:${port}`
    const prefix = testPrefix()
    let produced = 0
    let starts = 0
    const routes = (app: FastifyInstance): void => {
      app.get<{ Params: { id: string } }>('/chat/:id', { schema: { sse: events } }, (request, reply) =>
        reply.sse(async function * () {
          starts++
          for (; produced < TOKENS; produced++) {
            await new Promise((resolve) => setTimeout(resolve, 2))
            yield { event: 'token' as const, data: { text: `t${produced}` } }
          }
          yield { event: 'done' as const, data: { tokens: produced } }
        }, { resume: { key: `chat:${request.params.id}` } }))
      app.get<{ Params: { id: string } }>('/attach/:id', (request, reply) => reply.sse(app.sse.resumable(`chat:${request.params.id}`)))
    }
    const a = await startApp(t, { bus: redisBus({ url, prefix }) }, routes)
    const b = await startApp(t, { bus: redisBus({ url, prefix }) }, routes)
    const id = uniqueName('answer')

    const onA = readAll(`${a.url}/chat/${id}`)
    t.ok(await eventually(() => produced >= 20, 10_000), 'generating')
    const onB = readAll(`${b.url}/attach/${id}`)
    t.ok(await eventually(() => produced >= 60, 10_000))
    await shutdownRedis(redis, port)
    const downAt = produced
    await new Promise((resolve) => setTimeout(resolve, 200))
    redis = await startRedis(port, args)
    t.ok(downAt < TOKENS, `Redis went down mid-generation (after ${downAt} of ${TOKENS} tokens)`)

    const expected = [...Array.from({ length: TOKENS }, (_, n) => `t${n}`), `done:${TOKENS}`]
    t.same(await onA, expected, 'the reader on A (whose request started the source): every event once, then the end')
    t.same(await onB, expected, 'the reader on B: every event once, then the end')
    t.same(await readAll(`${b.url}/attach/${id}`), expected, 'the record is complete: a reader after the end gets all of it')
    t.equal(starts, 1, 'the source ran once')
  })
}
