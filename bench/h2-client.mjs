// The HTTP/2 load client of the idle-100k-h2 scenario: `node bench/h2-client.mjs '<json config>'`,
// forked by run.mjs. Opens `sessions` cleartext HTTP/2 connections (h2c, prior knowledge) to
// 127.0.0.1 and multiplexes idle SSE streams on them, `streamsPerSession` each (the k-th stream
// on session floor(k / streamsPerSession)); counts response heads and the body bytes of every
// stream (an idle stream gets nothing but heartbeats, `:\n\n` each).
//   <- { type: 'open', count }  -> { type: 'heads', total } once all have their response head
//   <- { type: 'mark' }         -> { type: 'marked' }   (every stream's byte count remembered)
//   <- { type: 'check' }        -> { type: 'checked', streams, minBeats, maxBeats, silent }
//                                  heartbeats per stream since 'mark' (bytes / 3)
// At most `maxPending` streams wait for their response head at a time.
import http2 from 'node:http2'
import { boundLifetime, report } from './processes.mjs'
import { HEARTBEAT } from './workload.mjs'

const config = JSON.parse(process.argv[2])
boundLifetime(config.lifetimeMs)

const { port, path, maxPending, streamsPerSession } = config
const BEAT = Buffer.byteLength(HEARTBEAT)
const sessions = []
const bytes = new Float64Array(config.capacity)
let marked = null
let opened = 0
let target = 0
let headed = 0
let pending = 0

function fail (message) {
  report({ type: 'error', message: `h2 client: ${message}` })
  process.exit(1)
}

function session (i) {
  sessions[i] ??= http2.connect(`http://127.0.0.1:${port}`, {
    // Until the server's SETTINGS arrive, Node assumes the peer allows 100 concurrent streams
    // and holds the others back: assume what the server will announce.
    peerMaxConcurrentStreams: streamsPerSession,
    // nghttp2's memory per session, in MB: the default 10 fits 1,000 streams, not ~10,000.
    maxSessionMemory: 1024
  }).on('error', (err) => fail(`session ${i}: ${err.message}`))
    .on('goaway', (code) => fail(`session ${i}: GOAWAY ${code}`))
  return sessions[i]
}

function openMore () {
  while (opened < target && pending < maxPending) {
    pending++
    request(opened++)
  }
}

function request (k) {
  const stream = session(Math.floor(k / streamsPerSession)).request({ ':path': path, accept: 'text/event-stream' })
  stream.on('response', (headers) => {
    if (headers[':status'] !== 200) fail(`status ${headers[':status']}`)
    pending--
    headed++
    openMore()
    if (headed === target) report({ type: 'heads', total: headed })
  })
  stream.on('data', (chunk) => { bytes[k] += chunk.length })
  stream.on('error', (err) => fail(`stream ${k}: ${err.message}`))
  stream.on('close', () => {
    fail(`stream ${k} closed (code ${stream.rstCode})`)
  })
}

process.on('message', (msg) => {
  if (msg.type === 'open') {
    target += msg.count
    openMore()
  } else if (msg.type === 'mark') {
    marked = bytes.slice(0, opened)
    report({ type: 'marked' })
  } else if (msg.type === 'check') {
    let minBeats = Infinity
    let maxBeats = 0
    let silent = 0
    for (let k = 0; k < marked.length; k++) {
      const beats = (bytes[k] - marked[k]) / BEAT
      if (beats < minBeats) minBeats = beats
      if (beats > maxBeats) maxBeats = beats
      if (beats === 0) silent++
    }
    report({ type: 'checked', streams: marked.length, minBeats, maxBeats, silent })
  }
})
