// node:http tuned by hand, the baseline the others are compared with.
// - A stream gathers frames into ~16 KiB writes (flushed at the latest on the next turn of the
//   event loop, so a slow source still sees each event promptly) and waits for 'drain' when
//   write() says so.
// - A broadcast serializes each event once, gathers the events published within one turn of
//   the event loop into one Buffer, and writes that same Buffer to every client; a client whose
//   socket is backed up gets the Buffers queued, written as one when it drains.
// - Variant 'per-event' (broadcast only) writes each event's Buffer to every client at once,
//   without gathering: what the gathering is worth.
// - Variant 'where' (broadcast only): the same, filtered: every client gets only the even
//   ticks (what `conduit-where` selects). The filter is known to be the same for every client,
//   so the filtered Buffer is made once per turn and written to every client: the cheapest a
//   filtered broadcast can be, with no per-client predicate at all. What a filter passing half
//   can reach on this transport, beside the unfiltered baseline.
// - With `heartbeatMs` (the 100,000 idle streams), one timer writes one shared heartbeat Buffer
//   to every client each interval.
import http from 'node:http'
import { asyncTicks, HEARTBEAT, listenNode, requestedEvents, SSE_HEADERS, tickFrame } from '../workload.mjs'

const BATCH_CHARS = 16 * 1024

export async function start ({ scenario, variant, heartbeatMs }, hooks) {
  const clients = new Set()
  let pending = []
  let scheduled = false

  const server = http.createServer((req, res) => {
    res.writeHead(200, SSE_HEADERS)
    if (scenario === 'stream') {
      streamTicks(res, requestedEvents(req.url))
      return
    }
    res.flushHeaders()
    const client = { res, queue: null }
    res.on('drain', () => {
      const queue = client.queue
      client.queue = null
      if (queue.length > 0) write(client, queue.length === 1 ? queue[0] : Buffer.concat(queue))
    })
    clients.add(client)
    hooks.connected()
    res.on('close', () => {
      clients.delete(client)
      hooks.disconnected()
    })
  })

  function write (client, buf) {
    if (client.queue !== null) client.queue.push(buf)
    else if (!client.res.write(buf)) client.queue = []
  }

  function flush () {
    scheduled = false
    const buf = Buffer.from(pending.join(''))
    pending = []
    for (const client of clients) write(client, buf)
  }

  if (heartbeatMs) {
    const beat = Buffer.from(HEARTBEAT)
    setInterval(() => { for (const client of clients) write(client, beat) }, heartbeatMs).unref()
  }

  const port = await listenNode(server)
  return {
    port,
    publish: variant !== 'per-event'
      ? (msg) => {
          if (variant !== 'where' || msg.data.i % 2 === 0) pending.push(tickFrame(msg))
          if (!scheduled) {
            scheduled = true
            setImmediate(flush)
          }
        }
      : (msg) => {
          const buf = Buffer.from(tickFrame(msg))
          for (const client of clients) write(client, buf)
        }
  }
}

async function streamTicks (res, count) {
  let batch = ''
  let blocked = false
  let scheduled = false
  const flush = () => {
    scheduled = false
    if (batch.length === 0) return
    if (!res.write(batch)) blocked = true
    batch = ''
  }
  for await (const msg of asyncTicks(count)) {
    batch += tickFrame(msg)
    if (batch.length >= BATCH_CHARS) flush()
    else if (!scheduled) {
      scheduled = true
      setImmediate(flush)
    }
    if (blocked) {
      blocked = false
      if (!await drained(res)) return
    }
  }
  flush()
  res.end()
}

/** Resolves true on 'drain', false if the response closes first. */
function drained (res) {
  return new Promise((resolve) => {
    const onDrain = () => { res.off('close', onClose); resolve(true) }
    const onClose = () => { res.off('drain', onDrain); resolve(false) }
    res.once('drain', onDrain)
    res.once('close', onClose)
  })
}
