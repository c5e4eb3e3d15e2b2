import { request } from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'

/** Listens on 127.0.0.1, port 0; returns the base URL. */
export async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

/**
 * A raw event-stream reader: the response head, then whole frames (text up to and including
 * the blank line) as they arrive on the socket, so tests compare exact bytes.
 */
export class FrameReader {
  readonly response: IncomingMessage
  readonly #frames: string[] = []
  readonly #waiters: Array<() => void> = []
  #buffer = ''
  #ended = false

  private constructor (response: IncomingMessage) {
    this.response = response
    response.setEncoding('utf8')
    response.on('data', (chunk: string) => {
      this.#buffer += chunk
      let end
      while ((end = this.#buffer.indexOf('\n\n')) !== -1) {
        this.#frames.push(this.#buffer.slice(0, end + 2))
        this.#buffer = this.#buffer.slice(end + 2)
      }
      this.#notify()
    })
    response.on('end', () => { this.#ended = true; this.#notify() })
    response.on('close', () => { this.#ended = true; this.#notify() })
  }

  static open (url: string, headers: Record<string, string> = {}): Promise<FrameReader> {
    return new Promise((resolve, reject) => {
      const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => resolve(new FrameReader(res)))
      req.on('error', reject)
      req.end()
    })
  }

  get headers (): IncomingHttpHeaders {
    return this.response.headers
  }

  /** The next frame; undefined once the response has ended. */
  async next (): Promise<string | undefined> {
    while (this.#frames.length === 0 && !this.#ended) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve))
    }
    return this.#frames.shift()
  }

  /** Every frame until the response ends. */
  async all (): Promise<string[]> {
    const frames: string[] = []
    for (let frame = await this.next(); frame !== undefined; frame = await this.next()) frames.push(frame)
    return frames
  }

  /** Resolves when the response has ended (the server closed the stream). */
  async ended (): Promise<void> {
    while (!this.#ended) await new Promise<void>((resolve) => this.#waiters.push(resolve))
  }

  /** Complete frames received and not yet taken with next(). */
  get pending (): number {
    return this.#frames.length
  }

  /** Text received after the last complete frame. */
  get rest (): string {
    return this.#buffer
  }

  close (): void {
    this.response.destroy()
  }

  #notify (): void {
    for (const wake of this.#waiters.splice(0)) wake()
  }
}

/** A pino destination that keeps parsed log lines, for asserting what was logged. */
export function logCapture (): { stream: Writable, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line !== '') lines.push(JSON.parse(line))
      callback()
    }
  })
  return { stream, lines }
}

/** A promise with its resolve function, for sources that wait on the test. */
export function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}
