// node:http as most hand-written SSE endpoints look: one res.write per event, the return value
// of write() ignored; a broadcast loops over the clients, formatting and writing the event for
// each (a `send(res, msg)` helper called per client).
import http from 'node:http'
import { asyncTicks, listenNode, requestedEvents, SSE_HEADERS, tickFrame } from '../workload.mjs'

export async function start ({ scenario }, hooks) {
  const clients = new Set()
  const server = http.createServer((req, res) => {
    res.writeHead(200, SSE_HEADERS)
    if (scenario === 'stream') {
      streamTicks(res, requestedEvents(req.url))
      return
    }
    res.flushHeaders()
    clients.add(res)
    hooks.connected()
    res.on('close', () => {
      clients.delete(res)
      hooks.disconnected()
    })
  })
  const port = await listenNode(server)
  return {
    port,
    publish (msg) {
      for (const res of clients) res.write(tickFrame(msg))
    }
  }
}

async function streamTicks (res, count) {
  for await (const msg of asyncTicks(count)) res.write(tickFrame(msg))
  res.end()
}
