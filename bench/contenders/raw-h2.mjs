// node:http2 tuned by hand, the baseline of the idle-100k-h2 scenario: cleartext HTTP/2 (h2c,
// prior knowledge), each stream answered with the SSE head and kept open; one timer writes one
// shared heartbeat Buffer to every stream each `heartbeatMs` (what raw-coalesced does over
// HTTP/1.1), queueing for a stream whose write() said to wait, written as one on 'drain'.
import http2 from 'node:http2'
import { H2_SERVER_OPTIONS, HEARTBEAT, LISTEN } from '../workload.mjs'

export async function start ({ heartbeatMs }, hooks) {
  const clients = new Set()
  const server = http2.createServer(H2_SERVER_OPTIONS)
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' })
    const client = { stream, queue: null }
    stream.on('drain', () => {
      const queue = client.queue
      client.queue = null
      if (queue.length > 0) write(client, queue.length === 1 ? queue[0] : Buffer.concat(queue))
    })
    stream.on('error', () => {})
    clients.add(client)
    hooks.connected()
    stream.on('close', () => {
      clients.delete(client)
      hooks.disconnected()
    })
  })

  function write (client, buf) {
    if (client.queue !== null) client.queue.push(buf)
    else if (!client.stream.write(buf)) client.queue = []
  }

  if (heartbeatMs) {
    const beat = Buffer.from(HEARTBEAT)
    setInterval(() => { for (const client of clients) write(client, beat) }, heartbeatMs).unref()
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(LISTEN, resolve)
  })
  return { port: server.address().port }
}
