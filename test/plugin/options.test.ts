import Fastify from 'fastify'
import t from 'tap'
import fastifyConduit from '../../lib/index.js'
import type { FastifyConduitOptions } from '../../lib/index.js'

// Options are checked at registration: a wrong type or value fails register with a coded error.

const bad: Array<[string, unknown]> = [
  ['heartbeat', 0],
  ['heartbeat', -1],
  ['heartbeat', 1.5],
  ['heartbeat', '15000'],
  ['heartbeat', true],
  ['retry', -1],
  ['retry', 2.5],
  ['retry', '3000'],
  ['onInvalid', 'ignore'],
  ['maxConnections', 0],
  ['maxConnections', -5],
  ['maxConnections', 1.5],
  ['maxConnections', '100'],
  ['closeGracePeriod', -1],
  ['closeGracePeriod', 0.5],
  ['closeGracePeriod', '1000']
]

for (const [option, value] of bad) {
  t.test(`${option}: ${JSON.stringify(value)} is refused`, async (t) => {
    const app = Fastify()
    app.register(fastifyConduit, { [option]: value } as FastifyConduitOptions)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: new RegExp(`"${option}"`) })
  })
}

t.test('good options are accepted', async (t) => {
  const app = Fastify()
  await app.register(fastifyConduit, { heartbeat: false, retry: 0, onInvalid: 'skip', maxConnections: Infinity })
  await app.ready()
  t.ok(app.hasReplyDecorator('sse'))
  t.ok(app.hasDecorator('sse'))
  await app.close()
})

t.test('stream options are checked too', async (t) => {
  const app = Fastify()
  await app.register(fastifyConduit)
  app.get('/bad-heartbeat', (request, reply) => reply.sse([], { heartbeat: -1 }))
  app.get('/bad-options', (request, reply) => reply.sse([], 'fast' as never))
  t.teardown(() => app.close())
  for (const path of ['/bad-heartbeat', '/bad-options']) {
    const res = await app.inject(path)
    t.equal(res.statusCode, 500)
    t.equal(res.json().code, 'FST_ERR_CONDUIT_INVALID_OPTION', path)
  }
})

t.test('the plugin is registered once per instance, under its name', async (t) => {
  const app = Fastify()
  await app.register(fastifyConduit)
  t.ok(app.hasPlugin('fastify-conduit'))
  await app.close()
})
