// Notifications pushed to every open page: POST /notifications publishes to a channel, and
// every client of GET /notifications receives it. A client that reconnects gets what it
// missed (the channel keeps the last 100) before the live events.
// Run it with `npx tsx example/notifications.ts`, then in two terminals:
//   curl -N http://127.0.0.1:3000/notifications
//   curl -H 'content-type: application/json' -d '{"title":"Deployed"}' http://127.0.0.1:3000/notifications
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import fastifyConduit from 'fastify-conduit'

const Level = Type.Union([Type.Literal('info'), Type.Literal('success'), Type.Literal('warning')])
const Notification = Type.Object({ title: Type.String(), level: Level, at: Type.String() })
const NewNotification = Type.Object({
  title: Type.String({ minLength: 1, maxLength: 140 }),
  level: Type.Optional(Level)
})

export const notifications: FastifyPluginAsync = async (app) => {
  const channel = app.sse.channel('notifications', { schema: { notification: Notification }, history: 100 })

  app.get('/notifications', (request, reply) => reply.sse(channel))

  app.withTypeProvider<TypeBoxTypeProvider>().post('/notifications', {
    schema: { body: NewNotification }
  }, async (request, reply) => {
    const { title, level = 'info' } = request.body
    const id = await channel.publish({ event: 'notification', data: { title, level, at: new Date().toISOString() } })
    return reply.code(202).send({ id })
  })
}

if (import.meta.filename === process.argv[1]) {
  const app = Fastify({ logger: true })
  await app.register(fastifyConduit)
  await app.register(notifications)
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
}
