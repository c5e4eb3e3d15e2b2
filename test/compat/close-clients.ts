import { connect } from 'node:net'
import type { Socket } from 'node:net'

// The clients of test/compat/close-many.test.ts, in a process of their own (10,000 sockets on
// each side would pass the file-descriptor limit of one process): `reading` clients that read
// their streams and `stalled` ones that never read. Started with the server's port and the two
// counts; sends { opened } once every response head arrived, then { endedReading, stalledClosed }
// once every reading client saw its response end (the last chunk of a chunked body; the
// connection may then stay open, idle, as keep-alive allows) and every stalled one was closed,
// or when the parent sends 'report'.

const [port, reading, stalled] = process.argv.slice(2).map(Number)
const paths = ['/tick', '/channel']
let opened = 0
let stalledClosed = 0
let endedReading = 0
let reported = false
const sockets: Socket[] = []
const total = reading + stalled

function open (path: string, read: boolean): Socket {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
  let head = false
  let tail = ''
  socket.on('data', (chunk: Buffer) => {
    if (!head) {
      head = true
      if (!read) socket.pause()
      if (++opened === total) process.send?.({ opened })
    }
    tail = (tail + chunk.toString('latin1')).slice(-16)
    if (read && tail.endsWith('\r\n0\r\n\r\n')) {
      endedReading++
      check()
    }
  })
  socket.on('close', () => {
    if (read) return
    stalledClosed++
    check()
  })
  return socket
}

for (let i = 0; i < total; i++) {
  const socket = open(i < reading ? paths[i % paths.length] : '/firehose', i < reading)
  if (i >= reading) sockets.push(socket)
  // A few hundred at a time, so that the server's accept backlog never overflows.
  if (i % 200 === 199) await new Promise((resolve) => setTimeout(resolve, 20))
}
function check (): void {
  if (endedReading === reading && stalledClosed === stalled) report()
}

function report (): void {
  if (reported) return
  reported = true
  process.send?.({ endedReading, stalledClosed }, () => process.exit(0))
}
// 'drain': the stalled clients read again (a paused socket does not see its connection close);
// 'report': report now.
process.on('message', (message) => {
  if (message === 'drain') for (const socket of sockets) socket.resume()
  else report()
})
