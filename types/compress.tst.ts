import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import fastifyConduit from 'fastify-conduit'
import type { CompressOptions, FastifyConduitOptions, SSEReplyOptions } from 'fastify-conduit'

const app = Fastify()

test('the plugin takes compress: a boolean or { encodings, level, quality }', () => {
  expect(app.register(fastifyConduit, { compress: true })).type.not.toRaiseError()
  expect(app.register(fastifyConduit, { compress: { encodings: ['br', 'gzip', 'deflate'], level: 6, quality: 5 } })).type.not.toRaiseError()
  expect(app.register(fastifyConduit, { compress: 'gzip' })).type.toRaiseError("'string' is not assignable")
  expect(app.register(fastifyConduit, { compress: { encodings: ['zstd'] } })).type.toRaiseError('"zstd"')
  expect<FastifyConduitOptions['compress']>().type.toBe<boolean | CompressOptions | undefined>()
})

test('reply.sse takes compress per stream', () => {
  app.get('/s', (request, reply) => {
    expect(reply.sse([], { compress: false })).type.not.toRaiseError()
    expect(reply.sse([], { compress: { level: 9 } })).type.not.toRaiseError()
    expect(reply.sse([], { compress: { level: '9' } })).type.toRaiseError("'string' is not assignable")
  })
  expect<SSEReplyOptions>().type.toBeAssignableFrom({ compress: { encodings: ['gzip' as const] } })
})

test('CompressOptions lists its fields', () => {
  expect<CompressOptions>().type.toBe<{ encodings?: Array<'br' | 'gzip' | 'deflate'>, level?: number, quality?: number }>()
})
