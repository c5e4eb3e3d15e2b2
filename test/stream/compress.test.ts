import { request } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { connect as http2Connect } from 'node:http2'
import { randomBytes } from 'node:crypto'
import { pipeline } from 'node:stream'
import type { Readable } from 'node:stream'
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib'
import fastifyCompress from '@fastify/compress'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import t from 'tap'
import { fetch as undiciFetch } from 'undici'
import fastifyConduit from '../../lib/index.js'
import type { CompressOptions, FastifyConduitOptions } from '../../lib/index.js'
import { connect } from '../../lib/client/index.js'
import { negotiateEncoding, varyOnAcceptEncoding } from '../../lib/stream/compress.js'
import { deferred, FrameReader, RawSubscriber, startApp, startChannelApp, take, within } from '../support/index.js'

// The `compress` option: the stream compressed with the coding the client prefers, flushed
// after every batch and heartbeat, so that each event reaches the client before the source
// produces the next one.

const ENCODINGS = ['gzip', 'br', 'deflate'] as const
const decoders: Record<string, () => NodeJS.ReadWriteStream> = { gzip: createGunzip, br: createBrotliDecompress, deflate: createInflate }
// A hang turns into a failed assertion: each step waited on takes milliseconds.
const PROMPTLY = 10_000

/** An event stream read with node:http, decoded as its Content-Encoding says (frames as the app wrote them). */
function openDecoded (url: string, headers: Record<string, string>): Promise<{ reader: FrameReader, headers: IncomingHttpHeaders, close (): void }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (response) => {
      const reader = new FrameReader()
      const encoding = response.headers['content-encoding']
      const body: Readable = encoding === undefined ? response : pipeline(response, decoders[encoding](), () => {}) as unknown as Readable
      body.setEncoding('utf8')
      body.on('data', (text: string) => reader.push(text))
      body.on('end', () => reader.end())
      body.on('close', () => reader.end())
      resolve({ reader, headers: response.headers, close: () => { response.destroy() } })
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * A source that yields event `n` only once the client acknowledged event `n - 1`: if a
 * compressor held an event back, the client would never see it and the stream would stop.
 */
function acknowledged (count: number): { acks: Array<() => void>, source: () => AsyncGenerator<{ id: number, event: string, data: { text: string } }> } {
  const waits = Array.from({ length: count }, () => deferred())
  return {
    acks: waits.map((wait) => wait.resolve),
    source: async function * () {
      for (let n = 0; n < count; n++) {
        yield { id: n, event: 'token', data: { text: `token ${n} of the answer` } }
        await waits[n].promise
      }
    }
  }
}

t.test('negotiateEncoding follows Accept-Encoding: client weights first, then the server\'s order', async (t) => {
  const all = ['gzip', 'br', 'deflate'] as const
  const cases: Array<[string | undefined, string | undefined]> = [
    [undefined, undefined],
    ['', undefined],
    ['identity', undefined],
    ['zstd', undefined],
    ['gzip', 'gzip'],
    ['br', 'br'],
    ['deflate', 'deflate'],
    ['gzip, deflate, br', 'gzip'],
    ['gzip;q=0.5, br', 'br'],
    ['GZIP;Q=0.5, BR;q=0.8', 'br'],
    ['x-gzip', 'gzip'],
    ['*', 'gzip'],
    ['*;q=0.5, br', 'br'],
    ['gzip;q=0, *', 'br'],
    ['gzip;q=0, br;q=0, deflate;q=0', undefined],
    ['gzip;q=abc', undefined],
    ['gzip;q=2', undefined],
    ['gzip;level=1', 'gzip'],
    [' br ; q=0.1 , deflate ; q=0.2 ', 'deflate']
  ]
  for (const [header, expected] of cases) t.equal(negotiateEncoding(header, all), expected, JSON.stringify(header))
  t.equal(negotiateEncoding('gzip, deflate, br', ['br', 'gzip']), 'br', 'a tie goes to the server\'s order')
  t.equal(negotiateEncoding('deflate', ['br', 'gzip']), undefined, 'only the offered codings')
})

t.test('varyOnAcceptEncoding adds accept-encoding once', async (t) => {
  t.equal(varyOnAcceptEncoding(undefined), 'accept-encoding')
  t.equal(varyOnAcceptEncoding(' '), 'accept-encoding')
  t.equal(varyOnAcceptEncoding('origin'), 'origin, accept-encoding')
  t.equal(varyOnAcceptEncoding('Origin, Accept-Encoding'), 'Origin, Accept-Encoding')
  t.equal(varyOnAcceptEncoding('*'), '*')
})

for (const encoding of ENCODINGS) {
  t.test(`${encoding}: our client decompresses and gets each event before the next is produced`, async (t) => {
    const count = 20
    const { acks, source } = acknowledged(count)
    const { url } = await startApp(t, { compress: true }, (app) => {
      app.get('/tokens', (request, reply) => reply.sse(source))
    })
    const stream = connect(url + '/tokens', { events: { token: Type.Object({ text: Type.String() }) }, headers: { 'accept-encoding': encoding }, reconnect: false })
    const texts: string[] = []
    for await (const event of stream) {
      texts.push(event.data.text)
      // The source goes on only once this event was decoded here.
      acks[Number(event.id)]()
    }
    t.same(texts, Array.from({ length: count }, (_, n) => `token ${n} of the answer`))
  })

  t.test(`${encoding}: undici fetch decompresses and gets each event before the next is produced; the head says how`, async (t) => {
    const count = 20
    const { acks, source } = acknowledged(count)
    const { url } = await startApp(t, { compress: true }, (app) => {
      app.get('/tokens', (request, reply) => reply.sse(source))
    })
    const response = await undiciFetch(url + '/tokens', { headers: { 'accept-encoding': encoding } })
    t.equal(response.headers.get('content-encoding'), encoding)
    t.equal(response.headers.get('vary'), 'accept-encoding')
    t.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8')
    const reader = new FrameReader()
    const reading = (async () => {
      const decoder = new TextDecoder()
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) reader.push(decoder.decode(chunk, { stream: true }))
      reader.end()
    })()
    for (let n = 0; n < count; n++) {
      const [frame] = await reader.take(1)
      t.equal(frame.id, String(n))
      acks[n]()
    }
    await reading
    t.equal(reader.pending, 0)
  })

  t.test(`${encoding}: heartbeats are flushed while the source is quiet`, async (t) => {
    const quiet = deferred()
    const { url } = await startApp(t, { compress: true, heartbeat: 20, retry: 500 }, (app) => {
      app.get('/quiet', (request, reply) => reply.sse(async function * () {
        yield { data: 'first' }
        await quiet.promise
      }))
    })
    const { reader, headers, close } = await openDecoded(url + '/quiet', { 'accept-encoding': encoding })
    t.equal(headers['content-encoding'], encoding)
    t.equal(await reader.next(), 'retry: 500\n\n')
    t.equal(await reader.next(), 'data: first\n\n')
    // Nothing else is written until the source goes on: only a flushed heartbeat can arrive.
    t.equal(await reader.next(), ':\n\n')
    t.equal(await reader.next(), ':\n\n')
    close()
    quiet.resolve()
  })
}

t.test('no compression when the client accepts none of the codings, and Vary says it depends', async (t) => {
  const { url } = await startApp(t, { compress: true }, (app) => {
    app.get('/plain', (request, reply) => reply.sse([{ data: 'plain' }]))
  })
  for (const accept of [undefined, 'identity', 'zstd', 'gzip;q=0, br;q=0, deflate;q=0, *;q=0']) {
    const { reader, headers } = await openDecoded(url + '/plain', accept === undefined ? {} : { 'accept-encoding': accept })
    t.notOk('content-encoding' in headers, String(accept))
    t.equal(headers.vary, 'accept-encoding')
    t.same(await reader.all(), ['data: plain\n\n'])
  }
})

t.test('off by default; reply.sse options turn it on or off over the plugin\'s', async (t) => {
  // [plugin options, reply.sse options, coding expected]; Vary is there whenever compression is on.
  const cases: Array<[FastifyConduitOptions, { compress?: boolean | CompressOptions } | undefined, string | undefined, boolean]> = [
    [{}, undefined, undefined, false],
    [{}, { compress: true }, 'gzip', true],
    [{}, { compress: { encodings: ['br'] } }, 'br', true],
    [{ compress: true }, { compress: false }, undefined, false],
    [{ compress: { encodings: ['deflate', 'gzip'], level: 1 } }, undefined, 'deflate', true],
    [{ compress: { encodings: ['deflate', 'gzip'] } }, { compress: true }, 'deflate', true],
    [{ compress: { encodings: ['deflate'] } }, { compress: { level: 9, quality: 11 } }, 'deflate', true],
    [{ compress: { quality: 0 } }, { compress: { encodings: ['br'] } }, 'br', true],
    [{ compress: { encodings: ['br'] } }, undefined, undefined, true]
  ]
  for (const [plugin, stream, expected, vary] of cases) {
    const { url, app } = await startApp(t, plugin, (app) => {
      app.get('/s', (request, reply) => reply.sse([{ data: 'x'.repeat(1000) }], stream))
    })
    const { reader, headers } = await openDecoded(url + '/s', { 'accept-encoding': expected === undefined ? 'gzip, deflate' : 'gzip, deflate, br' })
    const label = JSON.stringify([plugin, stream])
    t.equal(headers['content-encoding'], expected, label)
    t.equal(headers.vary, vary ? 'accept-encoding' : undefined, label)
    t.same(await reader.all(), [`data: ${'x'.repeat(1000)}\n\n`], label)
    await app.close()
  }
})

t.test('compress options are checked', async (t) => {
  const bad: Array<[unknown, string]> = [
    ['yes', 'compress'],
    [{ encoding: ['gzip'] }, 'compress'],
    [{ encodings: [] }, 'compress.encodings'],
    [{ encodings: ['zstd'] }, 'compress.encodings'],
    [{ encodings: ['gzip', 'gzip'] }, 'compress.encodings'],
    [{ level: 0 }, 'compress.level'],
    [{ level: 10 }, 'compress.level'],
    [{ quality: 12 }, 'compress.quality'],
    [{ quality: 1.5 }, 'compress.quality']
  ]
  for (const [compress, option] of bad) {
    const app = Fastify()
    app.register(fastifyConduit, { compress } as FastifyConduitOptions)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: `fastify-conduit: option "${option}" ` }, JSON.stringify(compress))
    await app.close()
  }
  const { app } = await startApp(t, {}, (app) => {
    app.get('/bad', (request, reply) => reply.sse([], { compress: { level: 42 } }))
  })
  const res = await app.inject('/bad')
  t.equal(res.statusCode, 500)
  t.equal(res.json().code, 'FST_ERR_CONDUIT_INVALID_OPTION')
})

t.test('HEAD gets the head a GET would: Content-Encoding and Vary', async (t) => {
  const { app } = await startApp(t, { compress: true }, (app) => {
    app.get('/s', (request, reply) => reply.sse([{ data: 'x' }]))
  })
  const res = await app.inject({ method: 'HEAD', url: '/s', headers: { 'accept-encoding': 'br' } })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-encoding'], 'br')
  t.equal(res.headers.vary, 'accept-encoding')
  t.equal(res.body, '')
})

t.test('with @fastify/compress matching text/event-stream: compressed once, by fastify-conduit, flushed per event', async (t) => {
  const count = 10
  const { acks, source } = acknowledged(count)
  const { url } = await startApp(t, { compress: true }, (app) => {
    app.get('/tokens', (request, reply) => {
      reply.header('vary', 'origin')
      return reply.sse(source)
    })
  }, { before: (app) => app.register(fastifyCompress, { customTypes: /^text\//, threshold: 0 }) })
  const { reader, headers } = await openDecoded(url + '/tokens', { 'accept-encoding': 'br, gzip' })
  t.equal(headers['content-encoding'], 'gzip', 'one coding, ours (gzip first)')
  t.equal(headers.vary, 'origin, accept-encoding', 'Vary named once, the app\'s kept')
  for (let n = 0; n < count; n++) {
    // Decoded once, these are the frames as written: compressed twice they would not be.
    const [frame] = await reader.take(1)
    t.equal(frame.raw, `event: token\nid: ${n}\ndata: {"text":"token ${n} of the answer"}\n`)
    acks[n]()
  }
  t.same(await reader.all(), [])
})

t.test('with @fastify/compress matching text/event-stream and a client that accepts none of our codings: plain, not refused', async (t) => {
  const { url } = await startApp(t, { compress: { encodings: ['gzip'] } }, (app) => {
    app.get('/s', (request, reply) => reply.sse([{ data: 'plain' }]))
  }, { before: (app) => app.register(fastifyCompress, { customTypes: /^text\//, threshold: 0 }) })
  for (const accept of ['br', 'identity', 'gzip;q=0, deflate']) {
    const { reader, headers } = await openDecoded(url + '/s', { 'accept-encoding': accept })
    t.notOk('content-encoding' in headers, accept)
    t.same(await reader.all(), ['data: plain\n\n'], accept)
  }
})

t.test('HTTP/2: compressed and flushed per event', async (t) => {
  const count = 5
  const { acks, source } = acknowledged(count)
  const { url } = await startApp(t, { compress: true }, (app) => {
    app.get('/tokens', (request, reply) => reply.sse(source))
  }, { http2: true })
  const session = http2Connect(url)
  t.teardown(() => session.close())
  const req = session.request({ ':path': '/tokens', 'accept-encoding': 'br' })
  const [head] = await Promise.all([new Promise<Record<string, unknown>>((resolve) => req.once('response', resolve))])
  t.equal(head['content-encoding'], 'br')
  t.notOk('connection' in head)
  const reader = new FrameReader()
  const decoded = pipeline(req, createBrotliDecompress(), () => {})
  decoded.setEncoding('utf8')
  decoded.on('data', (text: string) => reader.push(text))
  decoded.on('end', () => reader.end())
  for (let n = 0; n < count; n++) {
    const [frame] = await reader.take(1)
    t.equal(frame.id, String(n))
    acks[n]()
  }
  t.same(await reader.all(), [])
})

t.test('a compressed subscriber that stops reading is still dropped past maxBufferedBytes', async (t) => {
  const maxBufferedBytes = 256 * 1024
  const { channel, app, port } = await startChannelApp(t, { compress: true, maxBufferedBytes }, '/slow', 'slow')
  const warm = channel.subscribe()
  await warm.ready
  const slow = new RawSubscriber(port, '/slow', { 'accept-encoding': 'gzip' })
  t.teardown(() => slow.close())
  t.match(await slow.head, /\r\ncontent-encoding: gzip\r\n/i)
  slow.socket.pause()
  // Random text does not compress: the socket's buffers fill as they would uncompressed.
  let published = 0
  while (app.sse.stats().slowDisconnects === 0 && published < 5000) {
    await channel.publish({ data: randomBytes(24 * 1024).toString('base64') })
    published++
    await take(warm, 1)
  }
  t.equal(app.sse.stats().slowDisconnects, 1, 'dropped and counted')
  slow.socket.resume()
  t.ok(await within(slow.reader.ended(), PROMPTLY), 'the slow client was disconnected')
  t.equal(app.sse.stats().openStreams, 0)
  await warm.return()
})
