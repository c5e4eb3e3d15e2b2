// Counts complete SSE events in the raw bytes of an HTTP/1.1 response, as they arrive, without
// building strings. Pure: no sockets, no timers, so it is tested on its own (frame-counter.test.mjs).
//
// What is counted: every event whose data is a JSON object ends with `}` LF LF (a `data:` line
// ending in `}`, then the blank line that dispatches the event, WHATWG HTML §9.2.6). That
// marker excludes `retry:` and comment frames, and JSON never contains a raw LF, so it cannot
// occur inside a payload. The marker is searched for in the dechunked payload: a chunk header
// (`\r\n1a\r\n`) can fall anywhere inside a frame, so the match state is carried across chunks
// and across socket reads.
//
// Cost per event: one Buffer#indexOf for `}` (a memchr in C++) and two or three byte compares.
// The chunk-size lines are parsed byte by byte, a few bytes per chunk.

const LF = 0x0a
const CR = 0x0d
const RBRACE = 0x7d
const HEAD_END = Buffer.from('\r\n\r\n')

const HEAD = 0
const SIZE = 1
const SIZE_EXT = 2
const DATA = 3
const DATA_END = 4
const TRAILER = 5
const IDENTITY = 6
const DONE = 7

export class FrameCounter {
  /** Complete events seen so far. */
  frames = 0
  /** Payload bytes (dechunked) seen so far. */
  bodyBytes = 0
  /** HTTP status of the response, once the head is in. */
  status = 0
  /** The response head, once complete (latin1 text). */
  head = ''
  /** True once the head is complete. */
  headDone = false
  /** True once the chunked body's last chunk arrived. */
  ended = false
  /** The first payload bytes, kept when `sampleBytes` > 0 (to show the wire format). */
  sample = ''

  #state = HEAD
  #headParts = []
  #chunkLeft = 0
  #chunkSize = 0
  #trailerLine = 0
  #marker = 0 // 0: nothing, 1: after `}`, 2: after `}` LF
  #sampleBytes

  constructor ({ sampleBytes = 0 } = {}) {
    this.#sampleBytes = sampleBytes
  }

  /**
   * Feeds one read from the socket, buf[0, n); returns how many events it completed. `buf` may
   * be reused by the caller afterwards (nothing keeps a reference to it).
   */
  push (buf, n = buf.length) {
    const before = this.frames
    let i = 0
    while (i < n) {
      switch (this.#state) {
        case HEAD: i = this.#readHead(buf, n); break
        case IDENTITY: this.#payload(buf, i, n); i = n; break
        case DATA: {
          const end = Math.min(n, i + this.#chunkLeft)
          this.#payload(buf, i, end)
          this.#chunkLeft -= end - i
          i = end
          if (this.#chunkLeft === 0) this.#state = DATA_END
          break
        }
        case DATA_END: {
          // The CRLF after a chunk's data.
          const b = buf[i++]
          if (b === LF) this.#state = SIZE
          else if (b !== CR) throw new Error('malformed chunked encoding: expected CRLF after chunk data')
          break
        }
        case SIZE: {
          const b = buf[i++]
          if (b === LF) this.#endSizeLine()
          else if (b === 0x3b) this.#state = SIZE_EXT
          // CR (the LF follows), or whitespace before the line end: nothing to add.
          else if (b !== CR && b !== 0x20 && b !== 0x09) this.#chunkSize = this.#chunkSize * 16 + hexValue(b)
          break
        }
        case SIZE_EXT: {
          // A chunk extension (`;name=value`): ignored up to the end of the line.
          const lf = buf.indexOf(LF, i)
          if (lf === -1 || lf >= n) { i = n; break }
          i = lf + 1
          this.#endSizeLine()
          break
        }
        case TRAILER: {
          // Trailer fields, then an empty line.
          const b = buf[i++]
          if (b === LF) {
            if (this.#trailerLine === 0) { this.#state = DONE; this.ended = true } else this.#trailerLine = 0
          } else if (b !== CR) this.#trailerLine++
          break
        }
        default: i = n // DONE: anything after the last chunk is ignored
      }
    }
    return this.frames - before
  }

  #endSizeLine () {
    if (this.#chunkSize === 0) {
      this.#state = TRAILER
      this.#trailerLine = 0
    } else {
      this.#chunkLeft = this.#chunkSize
      this.#chunkSize = 0
      this.#state = DATA
    }
  }

  #readHead (buf, n) {
    const piece = buf.subarray(0, n)
    const all = this.#headParts.length === 0 ? piece : Buffer.concat([...this.#headParts, piece])
    const end = all.indexOf(HEAD_END)
    if (end === -1) {
      if (all.length > 65536) throw new Error('response head larger than 64 KiB')
      this.#headParts = [Buffer.from(all)] // a copy: the caller may reuse `buf`
      return n
    }
    this.#headParts = []
    this.head = all.toString('latin1', 0, end)
    this.headDone = true
    this.status = Number(this.head.slice(9, 12))
    this.#state = /\r\ntransfer-encoding:[^\r]*chunked/i.test(this.head) ? SIZE : IDENTITY
    // Where the body starts within this read: the bytes of `all` before it were head bytes.
    return n - (all.length - (end + HEAD_END.length))
  }

  /** Scans payload bytes buf[start, end) for the `}` LF LF marker. */
  #payload (buf, start, end) {
    this.bodyBytes += end - start
    if (this.sample.length < this.#sampleBytes) {
      this.sample += buf.toString('latin1', start, Math.min(end, start + this.#sampleBytes - this.sample.length))
    }
    let marker = this.#marker
    let frames = 0
    let i = start
    while (i < end) {
      if (marker === 0) {
        const p = buf.indexOf(RBRACE, i)
        if (p === -1 || p >= end) break
        marker = 1
        i = p + 1
      } else {
        const b = buf[i++]
        if (b === LF) {
          if (marker === 1) marker = 2
          else { frames++; marker = 0 }
        } else marker = b === RBRACE ? 1 : 0
      }
    }
    this.#marker = marker
    this.frames += frames
  }
}

function hexValue (b) {
  if (b >= 0x30 && b <= 0x39) return b - 0x30
  if (b >= 0x61 && b <= 0x66) return b - 0x57
  if (b >= 0x41 && b <= 0x46) return b - 0x37
  throw new Error('malformed chunked encoding: bad chunk size')
}
