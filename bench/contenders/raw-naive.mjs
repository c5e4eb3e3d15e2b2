// node:http as most hand-written SSE endpoints look: one res.write per event, the return value
// of write() ignored; a broadcast loops over the clients, formatting and writing the event for
// each (a `send(res, msg)` helper called per client). With a `history` (the reconnect storm),
// the events are kept in an array, and a client with a Last-Event-ID gets every event after it
// written at once, one res.write each, before it joins the live clients.
import http from 'node:http'
import { asyncTicks, listenNode, requestedEvents, SSE_HEADERS, stormTick, tickFrame } from '../workload.mjs'

export async function start ({ scenario, history = 0 }, hooks) {
  const clients = new Set()
  const frames = Array.from({ length: history }, (_, i) => tickFrame({ ...stormTick(i), id: i + 1 }))
  const server = http.createServer((req, res) => {
    res.writeHead(200, SSE_HEADERS)
    if (scenario === 'stream') {
      streamTicks(res, requestedEvents(req.url))
      return
    }
    res.flushHeaders()
    const lastEventId = req.headers['last-event-id']
    if (lastEventId !== undefined) {
      // ids are 1..history: every frame after the given one.
      for (let i = Number(lastEventId); i < frames.length; i++) res.write(frames[i])
    }
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
    historyIds: frames.map((_, i) => String(i + 1)),
    historyBytes: frames.reduce((sum, frame) => sum + Buffer.byteLength(frame), 0),
    publish (msg) {
      for (const res of clients) res.write(tickFrame(msg))
    }
  }
}

async function streamTicks (res, count) {
  for await (const msg of asyncTicks(count)) res.write(tickFrame(msg))
  res.end()
}
