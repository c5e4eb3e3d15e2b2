import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Teardown } from './app.js'

export interface SeenRequest {
  method: string
  headers: IncomingHttpHeaders
  body: string
}

export type Answer = (res: ServerResponse, index: number, request: SeenRequest) => void

export interface TestServer {
  url: string
  requests: SeenRequest[]
}

/**
 * A plain node:http event-stream server for the client tests, on 127.0.0.1, port 0, closed when
 * the test ends: the test says how to answer the nth request, and reads back what each carried.
 */
export async function startEventServer (t: Teardown, answer: Answer): Promise<TestServer> {
  const requests: SeenRequest[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => {
      const seen = { method: req.method ?? '', headers: req.headers, body }
      requests.push(seen)
      answer(res, requests.length - 1, seen)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/events`, requests }
}

/** Sends the head of an event stream at once, before any event. */
export function openEventStream (res: ServerResponse, contentType = 'text/event-stream'): ServerResponse {
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache' })
  res.flushHeaders()
  return res
}
