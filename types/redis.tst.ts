import { expect, test } from 'tstyche'
import { redisBus } from 'fastify-conduit/redis'
import type { RedisBus, RedisBusOptions } from 'fastify-conduit/redis'

test('redisBus takes publishTimeout, in milliseconds', () => {
  expect(redisBus({ url: 'redis://127.0.0.1:6379', publishTimeout: 2000 })).type.toBe<RedisBus>()
  expect<RedisBusOptions['publishTimeout']>().type.toBe<number | undefined>()
  expect(redisBus({ publishTimeout: '2s' })).type.toRaiseError("'string' is not assignable")
  expect(redisBus({ publishTimeout: false })).type.toRaiseError("'boolean' is not assignable")
})
