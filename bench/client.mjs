// The load client: `node bench/client.mjs '<json config>'`, forked by run.mjs. Speaks HTTP/1.1
// on raw sockets (net.connect, a GET written by hand) and counts complete events with
// FrameCounter, so that it costs far less CPU than any server it measures; its own CPU time is
// reported with every result so that can be checked.
//
// mode 'stream': for each size in `warmup`, then `events`, one request `GET /sse?n=<size>`,
//   timed from just before connect to the last event.
//   -> { type: 'result', ns, frames, bodyBytes, headNs, cpu, sample }
// mode 'many': holds connections, all reading and counting.
//   <- { type: 'open', count }  -> { type: 'heads', total } once all have their response head
//   -> { type: 'done', tOpen, tDone, cpu, frames } once every socket has `events` events
//   With `resume` (the ids of a channel's history, oldest first), the k-th socket sends
//   `Last-Event-ID: resume[k % (n - 1)]` and expects the events after it instead (the storm).
//   With `localAddresses`, the k-th socket connects from localAddresses[k % length] (many
//   source addresses on 127.0.0.0/8: each has its own ephemeral ports).
import net from 'node:net'
import { FrameCounter } from './frame-counter.mjs'
import { boundLifetime, report } from './processes.mjs'
import { tick, tickFrame } from './workload.mjs'

const config = JSON.parse(process.argv[2])
boundLifetime(config.lifetimeMs)

// Every socket reads into this one buffer (net's `onread`): no allocation and no 'data' event
// per read, and the counter is done with the bytes before the next read overwrites them.
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)

const REQUEST = (path, lastEventId = null) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${config.port}\r\nAccept: text/event-stream\r\n` +
  (lastEventId === null ? '' : `Last-Event-ID: ${lastEventId}\r\n`) + '\r\n'

function fail (message) {
  report({ type: 'error', message: `client: ${message}` })
  process.exit(1)
}

warmUpCounter()

if (config.mode === 'stream') {
  for (const size of config.warmup) await streamOnce(size)
  const cpu0 = process.cpuUsage()
  const result = await streamOnce(config.events, 240)
  report({ type: 'result', ...result, cpu: process.cpuUsage(cpu0) })
} else {
  holdMany()
}

/**
 * Runs the counter over synthetic responses until V8 has optimized it, so that the first
 * measured events are not counted by the interpreter (several times slower).
 */
function warmUpCounter () {
  const frames = Array.from({ length: 64 }, (_, i) => tickFrame(tick(i))).join('')
  const chunk = Buffer.byteLength(frames).toString(16) + '\r\n' + frames + '\r\n'
  const wire = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + chunk.repeat(32))
  for (let round = 0; round < 200; round++) {
    const counter = new FrameCounter({ sampleBytes: 16 })
    for (let i = 0; i < wire.length; i += 4096) counter.push(wire.subarray(i, i + 4096))
    if (counter.frames !== 64 * 32) throw new Error(`FrameCounter counted ${counter.frames} of ${64 * 32}`)
  }
}

/** One stream of `count` events; resolves once all have arrived. */
function streamOnce (count, sampleBytes = 0) {
  return new Promise((resolve) => {
    const counter = new FrameCounter({ sampleBytes })
    const t0 = process.hrtime.bigint()
    let tHead = 0n
    const socket = net.connect({ host: '127.0.0.1', port: config.port, noDelay: true, onread: { buffer: READ_BUFFER, callback: onRead } })
    socket.on('connect', () => socket.write(REQUEST(`${config.path}?n=${count}`)))
    function onRead (n, buf) {
      counter.push(buf, n)
      if (tHead === 0n && counter.headDone) {
        tHead = process.hrtime.bigint()
        if (counter.status !== 200) fail(`status ${counter.status}: ${counter.head.split('\r\n')[0]}`)
      }
      if (counter.frames >= count) {
        const tDone = process.hrtime.bigint()
        socket.destroy()
        resolve({ ns: String(tDone - t0), headNs: String(tHead - t0), frames: counter.frames, bodyBytes: counter.bodyBytes, sample: counter.sample })
      }
    }
    socket.on('error', (err) => fail(`stream socket: ${err.message}`))
    socket.on('close', () => {
      if (counter.frames < count) fail(`stream closed after ${counter.frames} of ${count} events`)
    })
  })
}

/**
 * Many connections. Connection setup is paced: at most `maxPending` connections wait for their
 * response head at any time, so the listen backlog never overflows and drops SYNs (a dropped
 * SYN costs a 1 s retransmit and would be measured as the server's slowness).
 */
function holdMany () {
  const { events, maxPending, resume, localAddresses } = config
  const path = config.path
  let opened = 0 // sockets asked for so far
  let target = 0 // sockets wanted after the current 'open'
  let headed = 0
  let pending = 0
  let done = 0
  let frames = 0
  let cpu0 = null
  let tOpen = null // when the first 'open' arrived: a storm is timed from there

  process.on('message', (msg) => {
    if (msg.type === 'open') {
      tOpen ??= process.hrtime.bigint()
      target += msg.count
      cpu0 = null
      openMore()
    } else if (msg.type === 'go') {
      cpu0 = process.cpuUsage()
    }
  })

  function openMore () {
    while (opened < target && pending < maxPending) {
      pending++
      connect(opened++)
    }
  }

  function connect (k) {
    const counter = new FrameCounter()
    let gotHead = false
    // Resuming: after one of the history's ids but the last, so every socket expects events.
    const at = resume ? k % (resume.length - 1) : -1
    const expected = resume ? resume.length - 1 - at : events
    let complete = expected === 0
    const socket = net.connect({
      host: '127.0.0.1',
      port: config.port,
      localAddress: localAddresses?.[k % localAddresses.length],
      noDelay: true,
      onread: { buffer: READ_BUFFER, callback: onRead }
    })
    socket.on('connect', () => socket.write(REQUEST(path, resume ? resume[at] : null)))
    function onRead (n, buf) {
      const added = counter.push(buf, n)
      if (!gotHead && counter.headDone) {
        gotHead = true
        if (counter.status !== 200) fail(`status ${counter.status}: ${counter.head.split('\r\n')[0]}`)
        pending--
        headed++
        openMore()
        if (headed === target) report({ type: 'heads', total: headed })
      }
      if (added > 0) {
        frames += added
        if (!complete && counter.frames >= expected) {
          complete = true
          if (++done === target) {
            const tDone = process.hrtime.bigint()
            report({ type: 'done', tOpen: String(tOpen), tDone: String(tDone), cpu: process.cpuUsage(cpu0 ?? undefined), frames })
          }
        }
      }
    }
    socket.on('error', (err) => fail(`socket ${opened}: ${err.message}`))
    socket.on('close', () => {
      if (!complete || counter.ended) fail(`a connection closed early (head: ${gotHead}, ${counter.frames} of ${expected} events)`)
    })
  }
}
