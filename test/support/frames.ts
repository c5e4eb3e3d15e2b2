import { request } from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import type { Socket } from 'node:net'

/** One event-stream frame, its fields read back (`raw` without the blank line that ends it). */
export interface Frame {
  raw: string
  id?: string
  event?: string
  data?: string
  comment?: string
}

export function parseFrame (raw: string): Frame {
  const frame: Frame = { raw }
  for (const line of raw.split('\n')) {
    if (line.startsWith(':')) frame.comment = line.slice(1).trim()
    else if (line.startsWith('id: ')) frame.id = line.slice(4)
    else if (line.startsWith('event: ')) frame.event = line.slice(7)
    else if (line.startsWith('data: ')) frame.data = frame.data === undefined ? line.slice(6) : frame.data + '\n' + line.slice(6)
  }
  return frame
}

/**
 * A raw event-stream reader: whole frames (text up to and including the blank line) as they
 * arrive, so tests compare exact bytes. `open` reads with node:http, `fetch` with fetch, and
 * RawSubscriber with a bare socket; each feeds the body text in with push() and end().
 */
export class FrameReader {
  /** Every complete frame received, taken or not. */
  readonly frames: string[] = []
  #taken = 0
  #buffer = ''
  #ended = false
  #waiters: Array<() => void> = []

  /** An event stream read with node:http, sending `accept: text/event-stream`. */
  static open (url: string, headers: Record<string, string> = {}): Promise<FrameReader & { response: IncomingMessage, headers: IncomingHttpHeaders, close (): void }> {
    return new Promise((resolve, reject) => {
      const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
        const reader = new FrameReader()
        response.setEncoding('utf8')
        response.on('data', (text: string) => reader.push(text))
        response.on('end', () => reader.end())
        response.on('close', () => reader.end())
        resolve(Object.assign(reader, { response, headers: response.headers, close: () => { response.destroy() } }))
      })
      req.on('error', reject)
      req.end()
    })
  }

  /** An event stream read with fetch; abort() resolves once reading has stopped. */
  static async fetch (url: string, headers: Record<string, string> = {}): Promise<FrameReader & { status: number, contentType: string | null, abort (): Promise<void> }> {
    const controller = new AbortController()
    const response = await fetch(url, { headers, signal: controller.signal })
    const reader = new FrameReader()
    const reading = (async () => {
      const decoder = new TextDecoder()
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          reader.push(decoder.decode(chunk, { stream: true }))
        }
      } catch {
        // aborted by the test, or the server dropped the connection
      }
      reader.end()
    })()
    return Object.assign(reader, {
      status: response.status,
      contentType: response.headers.get('content-type'),
      abort: () => {
        controller.abort()
        return reading
      }
    })
  }

  push (text: string): void {
    this.#buffer += text
    let end
    while ((end = this.#buffer.indexOf('\n\n')) !== -1) {
      this.frames.push(this.#buffer.slice(0, end + 2))
      this.#buffer = this.#buffer.slice(end + 2)
    }
    this.#notify()
  }

  end (): void {
    this.#ended = true
    this.#notify()
  }

  /** The next frame not yet taken; undefined once the stream has ended. */
  async next (): Promise<string | undefined> {
    await this.#until(() => this.frames.length > this.#taken)
    return this.#taken < this.frames.length ? this.frames[this.#taken++] : undefined
  }

  /** Every frame not yet taken, until the stream ends. */
  async all (): Promise<string[]> {
    const frames: string[] = []
    for (let frame = await this.next(); frame !== undefined; frame = await this.next()) frames.push(frame)
    return frames
  }

  /** The next `count` frames not yet taken, read back (fewer if the stream ends first). */
  async take (count = 1): Promise<Frame[]> {
    await this.#until(() => this.frames.length >= this.#taken + count)
    const frames = this.frames.slice(this.#taken, this.#taken + count)
    this.#taken += frames.length
    return frames.map(read)
  }

  /** The first `count` frames, read back, once they have arrived (fewer if the stream ends first). */
  async waitFor (count: number): Promise<Frame[]> {
    await this.#until(() => this.frames.length >= count)
    return this.frames.slice(0, count).map(read)
  }

  /** Resolves when the stream has ended. */
  async ended (): Promise<void> {
    await this.#until(() => false)
  }

  /** Complete frames received and not yet taken. */
  get pending (): number {
    return this.frames.length - this.#taken
  }

  /** Text received after the last complete frame. */
  get rest (): string {
    return this.#buffer
  }

  async #until (done: () => boolean): Promise<void> {
    while (!done() && !this.#ended) await new Promise<void>((resolve) => this.#waiters.push(resolve))
  }

  #notify (): void {
    for (const wake of this.#waiters.splice(0)) wake()
  }
}

function read (frame: string): Frame {
  return parseFrame(frame.slice(0, -1))
}

/**
 * A subscriber on a bare TCP socket speaking HTTP/1.0, so the body is the event stream as is
 * (no chunked encoding): light enough to open a thousand, and able to stop reading.
 */
export class RawSubscriber {
  readonly socket: Socket
  readonly reader = new FrameReader()
  readonly head: Promise<string>

  constructor (port: number, path: string, headers: Record<string, string> = {}) {
    this.socket = connect(port, '127.0.0.1')
    this.socket.setEncoding('utf8')
    const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
    this.socket.write(`GET ${path} HTTP/1.0\r\nHost: 127.0.0.1\r\n${lines}\r\n`)
    let head = ''
    let inBody = false
    this.head = new Promise((resolve, reject) => {
      this.socket.on('error', reject)
      this.socket.on('data', (text: string) => {
        if (inBody) return this.reader.push(text)
        head += text
        const end = head.indexOf('\r\n\r\n')
        if (end === -1) return
        inBody = true
        resolve(head.slice(0, end))
        if (end + 4 < head.length) this.reader.push(head.slice(end + 4))
      })
    })
    this.head.catch(() => {})
    this.socket.on('close', () => this.reader.end())
  }

  close (): void {
    this.socket.destroy()
  }
}
