import { Agent, request as http1Request } from 'node:http'
import { connect as http2Connect } from 'node:http2'
import type { ClientHttp2Session } from 'node:http2'
import { connect as tcpConnect } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { pipeline } from 'node:stream'
import type { Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'
import type { FastifyInstance } from 'fastify'
import { within } from './wait.js'

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

/**
 * A bare HTTP/1.1 GET of `path` on a TCP socket to 127.0.0.1:`port`, sent and nothing read yet:
 * for a client that stops reading (pause the socket) or a test that reads the raw response.
 */
export function rawGet (port: number, path: string, headers: Record<string, string> = {}): Socket {
  const socket = tcpConnect(port, '127.0.0.1')
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${lines}\r\n`)
  return socket
}

/**
 * Closes `app` as a server shuts down under a client that is done with it: the client lets its
 * connections go and app.close() is given `ms`; then, whatever happened, the client drops every
 * connection (so the process can exit) and close() is given `ms` more. Says whether close()
 * resolved in each of the two.
 */
export async function closeApp (app: FastifyInstance, client: Client, ms: number): Promise<{ inTime: boolean, afterDrop: boolean }> {
  client.end()
  const closing = app.close()
  const inTime = await within(closing, ms)
  client.destroy()
  return { inTime, afterDrop: await within(closing, ms) }
}
