import Fastify from 'fastify'
import t from 'tap'
import fastifyConduit, { memoryBus } from '../../lib/index.js'
import { redisBus } from '../../lib/redis/index.js'
import type { FastifyConduitOptions } from '../../lib/index.js'
import { startApp } from '../support/index.js'

// Options are checked at registration: a wrong type or value fails register with a coded error.
// The tests of registration itself build their app by hand: startApp would register for them.

const bad: Array<[string, unknown]> = [
  ['heartbeat', 0],
  ['heartbeat', -1],
  ['heartbeat', 1.5],
  ['heartbeat', '15000'],
  ['heartbeat', true],
  ['heartbeat', {}],
  ['retry', { ms: 1 }],
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
  const { app } = await startApp(t, {}, (app) => {
    app.get('/bad-heartbeat', (request, reply) => reply.sse([], { heartbeat: -1 }))
    app.get('/bad-options', (request, reply) => reply.sse([], 'fast' as never))
  })
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

t.test('every options object names the option that is wrong, and is refused when not an object', async (t) => {
  const { app } = await startApp(t)
  const cases: Array<[string, () => unknown]> = [
    ['channel options', () => app.sse.channel('x', null as never)],
    ['history', () => app.sse.channel('x', { history: 0 })],
    ['maxBufferedBytes', () => app.sse.channel('x', { history: 5, maxBufferedBytes: 2 ** 60 })],
    ['memoryBus options', () => memoryBus('small' as never)],
    ['history', () => memoryBus({ history: 1.5 })],
    ['redisBus options', () => redisBus(42 as never)],
    ['url', () => redisBus({ url: 'redis://127.0.0.1', client: { duplicate () {} } as never })],
    ['client', () => redisBus({ client: { options: {} } as never })],
    ['prefix', () => redisBus({ prefix: null as never })],
    ['history', () => redisBus({ prefix: 'p:', history: Infinity })]
  ]
  for (const [option, make] of cases) {
    t.throws(make, { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: new RegExp(`option "${option}"`) }, option)
  }
})

t.test('a bus is known by its methods and history, own or inherited', async (t) => {
  // A bus whose history is a getter on its prototype is a bus: the next wrong option is named.
  class PrototypeBus {
    get history (): number { return 10 }
    ready (): void {}
    publish (): void {}
    listen (): void {}
    replay (): void {}
    compare (): void {}
    close (): void {}
  }
  const app = Fastify()
  app.register(fastifyConduit, { bus: new PrototypeBus() as never, maxBufferedBytes: 0 })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: /"maxBufferedBytes"/ })
  const good = Fastify()
  await good.register(fastifyConduit, { bus: memoryBus({ history: 3 }), maxBufferedBytes: 1024 })
  t.equal(good.sse.channel('x').name, 'x')
  await good.close()
})
