// node --test bench/frame-counter.test.mjs — the counter must count exactly, however the bytes
// are split into chunks and reads.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FrameCounter } from './frame-counter.mjs'
import { tick, tickFrame } from './workload.mjs'

const HEAD_CHUNKED = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n'
const HEAD_IDENTITY = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n'

function chunked (pieces) {
  return pieces.map((p) => Buffer.byteLength(p).toString(16) + '\r\n' + p + '\r\n').join('') + '0\r\n\r\n'
}

/**
 * Feeds `wire` to a counter in reads of `size` bytes, each copied into one reused buffer that
 * is then overwritten (as net.connect's `onread` does).
 */
function countIn (wire, size) {
  const counter = new FrameCounter({ sampleBytes: 40 })
  const buf = Buffer.from(wire, 'latin1')
  const read = Buffer.alloc(size + 8)
  for (let i = 0; i < buf.length; i += size) {
    const n = buf.copy(read, 0, i, i + size)
    counter.push(read, n)
    read.fill(0x7d)
  }
  return counter
}

const frames = Array.from({ length: 50 }, (_, i) => tickFrame(tick(i)))
const extra = ['retry: 3000\n\n', ': heartbeat\n\n', 'data: plain text\n\n']

test('identity body: every read size', () => {
  const wire = HEAD_IDENTITY + extra[0] + frames.join('') + extra[1]
  for (let size = 1; size <= 70; size++) {
    const counter = countIn(wire, size)
    assert.equal(counter.frames, 50, `read size ${size}`)
    assert.equal(counter.status, 200)
    assert.ok(counter.sample.startsWith('retry: 3000'))
  }
})

test('chunked body: one chunk per frame, frames split across chunks, every read size', () => {
  const joined = extra.join('') + frames.join('')
  const layouts = [
    frames,
    [extra.join(''), ...frames],
    // Chunk boundaries at every position of a frame, including between `}` and LF LF.
    Array.from({ length: Math.ceil(joined.length / 7) }, (_, i) => joined.slice(i * 7, i * 7 + 7)),
    Array.from({ length: Math.ceil(joined.length / 2) }, (_, i) => joined.slice(i * 2, i * 2 + 2)),
    Array.from({ length: joined.length }, (_, i) => joined[i])
  ]
  for (const layout of layouts) {
    const wire = HEAD_CHUNKED + chunked(layout)
    for (const size of [1, 2, 3, 5, 64, 1000, 1 << 20]) {
      const counter = countIn(wire, size)
      assert.equal(counter.frames, 50, `read size ${size}`)
      assert.ok(counter.ended)
    }
  }
})

test('chunk extensions and upper-case hex sizes', () => {
  const frame = tickFrame(tick(7))
  const size = Buffer.byteLength(frame).toString(16).toUpperCase()
  const wire = HEAD_CHUNKED + size + ';ext=1\r\n' + frame + '\r\n0\r\n\r\n'
  assert.equal(countIn(wire, 3).frames, 1)
})

test('a `}` that does not end a data line is not an event', () => {
  const wire = HEAD_IDENTITY + 'data: }\nid: x\n\n' + 'data: {"a":"}"}\n\n' + 'data: x}\n}\n'
  // Only the second frame ends with `}` LF LF; in the first, `}` LF is followed by `i`.
  assert.equal(countIn(wire, 1).frames, 1)
})
