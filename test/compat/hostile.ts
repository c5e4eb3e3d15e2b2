import { once } from 'node:events'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Channel } from '../../lib/index.js'
import { startApp } from '../support/index.js'
import type { Teardown } from '../support/index.js'

// Hostile requests and misbehaving sources against one server, while a clock stream on the
// same server must keep ticking. Shared by test/compat/hostile.test.ts and `npm run soak`.

export interface HostileServer {
  app: FastifyInstance
  port: number
  channel: Channel
}

export async function startHostileServer (t: Teardown): Promise<HostileServer> {
  let channel!: Channel
  const { app, port } = await startApp(t, { maxConnections: 100_000, heartbeat: 50 }, (app) => {
    channel = app.sse.channel('hostile', { history: 10 })
    // Echoes the Last-Event-ID it was given (or `none`), then ends.
    app.get('/echo', (request, reply) => reply.sse(function * ({ lastEventId }) {
      yield { event: 'echo', data: lastEventId ?? 'none' }
    }))
    app.get('/channel', (request, reply) => reply.sse(channel))
    app.get('/throw-sync', (request, reply) => reply.sse(() => { throw new Error('a source that throws at once') }))
    app.get('/throw-async', (request, reply) => reply.sse(async function * () {
      yield { data: 'first' }
      await new Promise((resolve) => setImmediate(resolve))
      throw new Error('a source that throws later')
    }))
    // Invalid events without end (under 'skip' nothing is ever written), until the client goes.
    app.get('/invalid-endless', (request, reply) => reply.sse(async function * ({ signal }) {
      while (!signal.aborted) yield { id: 'a\nb', data: 'never written' }
    }, { onInvalid: 'skip' }))
    // 100,000 invalid events from a sync generator, then one valid one.
    app.get('/invalid-many', (request, reply) => reply.sse(function * () {
      for (let i = 0; i < 100_000; i++) yield { retry: -1 }
      yield { data: 'done' }
    }, { onInvalid: 'skip' }))
    // One invalid event with the default policy: the stream closes.
    app.get('/invalid-close', (request, reply) => reply.sse([{ event: 'bad\nname', data: 'x' }]))
    // The stream the hostile traffic must not hold up.
    app.get('/clock', (request, reply) => reply.sse(async function * ({ signal }) {
      let n = 0
      while (!signal.aborted) {
        yield { id: n++, data: String(Date.now()) }
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
    }))
  })
  return { app, port, channel }
}

/** The kinds of hostile requests, in turn. */
export const ATTACKS = [
  'oversized-last-event-id', 'huge-last-event-id', 'invalid-utf8-last-event-id', 'nul-last-event-id', 'bogus-channel-last-event-id',
  'head', 'options', 'get-with-body', 'get-with-chunked-body', 'slow-headers', 'garbage', 'half-request',
  'throw-sync', 'throw-async', 'invalid-endless', 'invalid-many', 'invalid-close'
] as const
export type Attack = typeof ATTACKS[number]

/** How long a request may wait for its status line before it counts as unanswered. */
const HEAD_TIMEOUT = 10_000

/** What the server answered: a status, `closed` (closed without answering) or `pending` (slowloris). */
export type Answer = number | 'closed' | 'pending'

function request (path: string, headers: string[] = [], method = 'GET'): Buffer {
  return Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nConnection: close\r\n${headers.map((h) => h + '\r\n').join('')}\r\n`, 'latin1')
}

function bytesOf (attack: Attack): Buffer | undefined {
  switch (attack) {
    case 'oversized-last-event-id': return request('/echo', [`Last-Event-ID: ${'9'.repeat(5000)}`])
    case 'huge-last-event-id': return request('/echo', [`Last-Event-ID: ${'9'.repeat(70_000)}`])
    case 'invalid-utf8-last-event-id': return Buffer.concat([Buffer.from('GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nLast-Event-ID: a'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82]), Buffer.from('\r\n\r\n')])
    case 'nul-last-event-id': return Buffer.from('GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nLast-Event-ID: a\0b\r\n\r\n', 'latin1')
    case 'bogus-channel-last-event-id': return request('/channel', ['Last-Event-ID: not-an-id-of-this-bus'])
    case 'head': return request('/echo', [], 'HEAD')
    case 'options': return request('/channel', ['Origin: http://evil.example', 'Access-Control-Request-Method: GET'], 'OPTIONS')
    case 'get-with-body': return Buffer.concat([request('/echo', ['Content-Type: application/json', 'Content-Length: 13']).subarray(0, -2), Buffer.from('\r\n{"a":"body"}')])
    case 'get-with-chunked-body': return Buffer.concat([request('/echo', ['Transfer-Encoding: chunked']).subarray(0, -2), Buffer.from('\r\n5\r\nhello\r\n0\r\n\r\n')])
    case 'garbage': return Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n', 'latin1')
    case 'half-request': return request('/echo').subarray(0, 20)
    case 'slow-headers': return undefined
    default: return request('/' + attack)
  }
}

/**
 * Sends one hostile request on a raw socket and reads the answer's status. A stream is read
 * until it ends or for `streamMs`; a slowloris client trickles header bytes and is left pending
 * (the caller destroys it). Resolves with the answer and the socket.
 */
export async function attack (port: number, kind: Attack, streamMs: number): Promise<{ answer: Answer, socket: Socket }> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  if (kind === 'slow-headers') {
    socket.write('GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    const trickle = setInterval(() => socket.write('X-Slow: 1\r\n'), 200)
    socket.once('close', () => clearInterval(trickle))
    return { answer: 'pending', socket }
  }
  socket.write(bytesOf(kind) as Buffer)
  if (kind === 'half-request') socket.end()
  // The status line, waited for as long as a loaded machine may need; then a stream is read
  // for `streamMs` more (or until it ends).
  let head = ''
  const answer = await new Promise<Answer>((resolve) => {
    let timer = setTimeout(() => resolve(statusOf(head)), HEAD_TIMEOUT)
    socket.on('data', (chunk: Buffer) => {
      if (head.length >= 64) return
      head += chunk.toString('latin1')
      if (statusOf(head) === 'closed') return
      clearTimeout(timer)
      timer = setTimeout(() => resolve(statusOf(head)), streamMs)
    })
    socket.once('close', () => { clearTimeout(timer); resolve(statusOf(head)) })
  })
  socket.destroy()
  return { answer, socket }
}

function statusOf (head: string): Answer {
  const match = /^HTTP\/1\.1 (\d{3})/.exec(head)
  return match === null ? 'closed' : Number(match[1])
}

/** What each kind of attack may be answered with: anything else is a failure. */
export const SENSIBLE: Record<Attack, Answer[]> = {
  'oversized-last-event-id': [200],
  // Past Node's header size limit (16 KiB): 431, or the connection closed.
  'huge-last-event-id': [431, 'closed'],
  'invalid-utf8-last-event-id': [200],
  'nul-last-event-id': [400, 'closed'],
  'bogus-channel-last-event-id': [200],
  head: [200],
  options: [404],
  'get-with-body': [200],
  'get-with-chunked-body': [200],
  'slow-headers': ['pending'],
  garbage: [400, 'closed'],
  'half-request': [400, 'closed'],
  // A source function that throws when called: nothing was sent yet, so a 500 (EventSource
  // stops); a source that throws later: its stream ends.
  'throw-sync': [500],
  'throw-async': [200],
  'invalid-endless': [200],
  'invalid-many': [200],
  'invalid-close': [200]
}

/** A client of the clock stream: the largest gap between two ticks, and how many arrived. */
export function readClock (port: number): { ticks (): number, maxGap (): number, resetGap (): void, close (): void } {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write('GET /clock HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n')
  let ticks = 0
  let last = 0
  let maxGap = 0
  socket.on('data', (chunk: Buffer) => {
    const now = Date.now()
    const count = chunk.toString('latin1').split('\n\n').length - 1
    if (count === 0) return
    if (last !== 0) maxGap = Math.max(maxGap, now - last)
    last = now
    ticks += count
  })
  return { ticks: () => ticks, maxGap: () => maxGap, resetGap: () => { maxGap = 0; last = 0 }, close: () => socket.destroy() }
}
