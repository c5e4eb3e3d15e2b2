import { test } from 'tap'
import { Type } from '@sinclair/typebox'
import { connect, type ConnectOptions } from '../../lib/client/index.ts'

const URL_ = 'http://127.0.0.1:1/events'

test('wrong options throw ClientOptionError at once, naming the option', async (t) => {
  const cases: Array<[string, unknown, string]> = [
    ['options', null, 'options'],
    ['options', 'x', 'options'],
    ['lastEventId', { lastEventId: 1 }, 'lastEventId'],
    ['lastEventId', { lastEventId: 'a\nb' }, 'lastEventId'],
    ['lastEventId', { lastEventId: 'a\0' }, 'lastEventId'],
    ['signal', { signal: {} }, 'signal'],
    ['signal', { signal: null }, 'signal'],
    ['onReconnect', { onReconnect: 1 }, 'onReconnect'],
    ['fetch', { fetch: 'x' }, 'fetch'],
    ['method', { method: '' }, 'method'],
    ['method', { method: 1 }, 'method'],
    ['body with GET', { method: 'GET', body: 'x' }, 'body'],
    ['body with HEAD', { method: 'head', body: 'x' }, 'body'],
    ['reconnect', { reconnect: true }, 'reconnect'],
    ['reconnect', { reconnect: null }, 'reconnect'],
    ['minDelay', { reconnect: { minDelay: -1 } }, 'reconnect.minDelay'],
    ['minDelay', { reconnect: { minDelay: Infinity } }, 'reconnect.minDelay'],
    ['minDelay', { reconnect: { minDelay: '1' } }, 'reconnect.minDelay'],
    ['maxDelay', { reconnect: { maxDelay: NaN } }, 'reconnect.maxDelay'],
    ['maxDelay below minDelay', { reconnect: { minDelay: 10, maxDelay: 5 } }, 'reconnect.maxDelay'],
    ['headers', { headers: { 'bad name': 'x' } }, 'headers'],
    ['headers', { headers: { a: 'x\ny' } }, 'headers'],
    ['events', { events: null }, 'events'],
    ['events', { events: [] }, 'events'],
    ['events', { events: 'x' }, 'events'],
    ['events value', { events: { token: null } }, 'events.token'],
    ['events value', { events: { token: 'string' } }, 'events.token'],
    ['events value', { events: { token: { type: 'string' } } }, 'events.token'],
    ['onGap', { onGap: 'x' }, 'onGap'],
    ['idleTimeout', { idleTimeout: 0 }, 'idleTimeout'],
    ['idleTimeout', { idleTimeout: -1 }, 'idleTimeout'],
    ['idleTimeout', { idleTimeout: true }, 'idleTimeout'],
    ['idleTimeout', { idleTimeout: Infinity }, 'idleTimeout'],
    ['idleTimeout', { idleTimeout: '100' }, 'idleTimeout'],
    ['maxEventSize', { maxEventSize: 0 }, 'maxEventSize'],
    ['maxEventSize', { maxEventSize: 1.5 }, 'maxEventSize'],
    ['maxEventSize', { maxEventSize: false }, 'maxEventSize'],
    ['maxEventSize', { maxEventSize: NaN }, 'maxEventSize']
  ]
  for (const [name, options, option] of cases) {
    try {
      connect(URL_, options as ConnectOptions)
      t.fail(`${name}: no error`)
    } catch (err: any) {
      t.equal(err.code, 'FST_ERR_CONDUIT_CLIENT_INVALID_OPTION', name)
      t.equal(err.type, 'invalid-option')
      t.equal(err.option, option, `${name}: names ${option}`)
      t.match(err.message, /^fastify-conduit: option "/)
    }
  }
})

test('the URL must be valid; in Node it must be absolute', async (t) => {
  for (const url of ['/events', 'not a url', 'http://[bad']) {
    t.throws(() => connect(url), { code: 'FST_ERR_CONDUIT_CLIENT_INVALID_OPTION', option: 'url' }, url)
  }
})

test('in a page, the URL is resolved against the document, as EventSource does', async (t) => {
  const global = globalThis as { location?: { href: string } }
  global.location = { href: 'http://example.test/app/page' }
  t.teardown(() => { delete global.location })
  let called = ''
  const stream = connect('../events', {
    reconnect: false,
    fetch: async (url) => {
      called = url
      return new Response(null, { status: 204 })
    }
  })
  const { done } = await stream[Symbol.asyncIterator]().next()
  t.equal(done, true)
  t.equal(called, 'http://example.test/events')
})

test('without a global fetch, options.fetch is required', async (t) => {
  const saved = globalThis.fetch
  // @ts-expect-error -- a runtime without fetch
  globalThis.fetch = undefined
  t.teardown(() => { globalThis.fetch = saved })
  t.throws(() => connect(URL_), { code: 'FST_ERR_CONDUIT_CLIENT_INVALID_OPTION', option: 'fetch' })
  t.doesNotThrow(() => connect(URL_, { fetch: saved }))
})

test('good options pass', async (t) => {
  t.doesNotThrow(() => connect(URL_))
  t.doesNotThrow(() => connect(URL_, {
    reconnect: false,
    lastEventId: '',
    signal: new AbortController().signal,
    headers: new Headers({ a: '1' }),
    method: 'POST',
    body: new URLSearchParams({ a: '1' }),
    events: { a: Type.String(), b: Type.Number() },
    onReconnect: () => {}
  }))
  t.doesNotThrow(() => connect(URL_, { reconnect: { minDelay: 0, maxDelay: 0 } }))
  t.doesNotThrow(() => connect(URL_, {
    idleTimeout: false,
    maxEventSize: 1,
    onGap: () => {},
    headers: async () => ({ authorization: 'Bearer t' })
  }))
  t.doesNotThrow(() => connect(URL_, { idleTimeout: 0.5, maxEventSize: 2 ** 40, headers: () => [['a', '1']] }))
})
