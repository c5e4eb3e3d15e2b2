// A plain node:http event-stream server for the client tests: each test says how to answer the
// nth request, and reads back what every request carried.
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

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

/** Starts a server on 127.0.0.1, port 0, that `t.teardown` closes. */
export async function listen (t: { teardown: (fn: () => unknown) => void }, answer: Answer): Promise<TestServer> {
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
export function open (res: ServerResponse, contentType = 'text/event-stream'): ServerResponse {
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache' })
  res.flushHeaders()
  return res
}
