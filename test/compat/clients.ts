import { Agent, request as http1Request } from 'node:http'
import { connect as http2Connect } from 'node:http2'
import type { ClientHttp2Session } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { pipeline } from 'node:stream'
import type { Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { createParser } from 'eventsource-parser'
import type { FastifyInstance } from 'fastify'

export type Protocol = 'http1' | 'http2'
export type Method = 'GET' | 'HEAD'
export type Headers = Record<string, string | string[] | undefined>

/** One response, its head received. */
export interface Response {
  status: number
  headers: Headers
  /** The body as the application wrote it: gunzipped on the fly when it came gzip-encoded. */
  body: Readable
  /** The client goes away: the request is destroyed. */
  close (): void
}

/** A real client for one app: a keep-alive agent on HTTP/1.1, one session on HTTP/2. */
export interface Client {
  request (path: string, method: Method, headers: Record<string, string>): Promise<Response>
  /** Lets go of the connections as a client does when it is done: idle ones close. */
  end (): void
  /** Drops every connection now. */
  destroy (): void
}

/** A client of `app`; a request whose response head takes over `headTimeout` ms fails. */
export function connectClient (app: FastifyInstance, protocol: Protocol, headTimeout: number): Client {
  const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  return protocol === 'http1' ? http1Client(origin, headTimeout) : http2Client(origin, headTimeout)
}

function noHead (ms: number): Error {
  return new Error(`no response head within ${ms} ms`)
}

function http1Client (origin: string, headTimeout: number): Client {
  const agent = new Agent({ keepAlive: true })
  return {
    request: (path, method, headers) => new Promise((resolve, reject) => {
      const req = http1Request(origin + path, { method, headers, agent }, (res) => {
        clearTimeout(timer)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: decoded(res, res.headers), close: () => req.destroy() })
      })
      const timer = setTimeout(() => req.destroy(noHead(headTimeout)), headTimeout)
      req.on('error', (err) => { clearTimeout(timer); reject(err) })
      req.end()
    }),
    // Fastify's close() ends idle keep-alive connections itself; a busy one is its business.
    end: () => {},
    destroy: () => agent.destroy()
  }
}

function http2Client (origin: string, headTimeout: number): Client {
  const session: ClientHttp2Session = http2Connect(origin)
  // A session the server tears down fails the open requests, which report it themselves.
  session.on('error', () => {})
  return {
    request: (path, method, headers) => new Promise((resolve, reject) => {
      const req = session.request({ ':method': method, ':path': path, ...headers }, { endStream: true })
      const timer = setTimeout(() => req.destroy(noHead(headTimeout)), headTimeout)
      const fail = (err: Error): void => { clearTimeout(timer); reject(err) }
      req.once('error', fail)
      req.once('response', (head) => {
        clearTimeout(timer)
        req.off('error', fail)
        const { ':status': status, ...rest } = head
        resolve({ status: Number(status), headers: rest, body: decoded(req, rest), close: () => req.destroy() })
      })
    }),
    // Graceful: the session closes once its open streams have ended.
    end: () => session.close(),
    destroy: () => session.destroy()
  }
}

function decoded (body: Readable, headers: Headers): Readable {
  // A body that fails (a reset stream) is reported by what reads it, EventReader.
  body.on('error', () => {})
  if (headers['content-encoding'] !== 'gzip') return body
  // Streaming gunzip: each event must come out as soon as its compressed bytes arrive.
  return pipeline(body, createGunzip(), () => {})
}

/** An event as an EventSource would dispatch it. */
export interface ReceivedEvent {
  event: string
  id: string | undefined
  data: string
}

/**
 * Reads a response body with eventsource-parser, a WHATWG event-stream parser: the events as
 * they are dispatched, and whether the body ended.
 */
export class EventReader {
  readonly events: ReceivedEvent[] = []
  /** Body bytes received, after any gzip decoding. */
  bytes = 0
  /** An error the body failed with (a reset stream, a broken gzip stream), if any. */
  error: Error | undefined
  #ended = false
  #changed: Array<() => void> = []

  constructor (body: Readable) {
    const parser = createParser({
      onEvent: ({ event, id, data }) => {
        this.events.push({ event: event ?? 'message', id, data })
        this.#notify()
      }
    })
    const decoder = new TextDecoder()
    body.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length
      parser.feed(decoder.decode(chunk, { stream: true }))
    })
    body.on('error', (err) => { this.error = err })
    body.on('end', () => { this.#ended = true; this.#notify() })
    body.on('close', () => { this.#ended = true; this.#notify() })
  }

  get ended (): boolean {
    return this.#ended
  }

  /** True once `count` events have arrived; false if the body ended or `ms` passed first. */
  received (count: number, ms: number): Promise<boolean> {
    return this.#until(() => this.events.length >= count, ms)
  }

  /** True once the body has ended; false if `ms` passed first. */
  end (ms: number): Promise<boolean> {
    return this.#until(() => this.#ended, ms)
  }

  async #until (done: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!done()) {
      if (this.#ended || Date.now() >= deadline) return done()
      await within(new Promise<void>((resolve) => this.#changed.push(resolve)), deadline - Date.now())
    }
    return true
  }

  #notify (): void {
    for (const wake of this.#changed.splice(0)) wake()
  }
}

/**
 * True if `promise` settles within `ms`. The bound only turns a hang into a failed assertion:
 * every step waited on here takes about a millisecond.
 */
export async function within (promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>((resolve) => { timer = setTimeout(resolve, Math.max(ms, 0), false) })
  try {
    return await Promise.race([promise.then(() => true, () => true), late])
  } finally {
    clearTimeout(timer)
  }
}

/** True once `condition()` holds (checked every millisecond or so); false after `ms`. */
export async function eventually (condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() >= deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  return true
}
