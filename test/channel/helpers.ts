import { connect, createServer } from 'node:net'
import { createParser } from 'eventsource-parser'
import type { EventSourceMessage } from 'eventsource-parser'
import type { Socket } from 'node:net'
import Fastify from 'fastify'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import fastifyConduit from '../../lib/index.js'
import type { FastifyConduitOptions } from '../../lib/index.js'

/** The tap test object, as far as these helpers need it. */
export interface Teardown {
  teardown (fn: () => unknown): void
}

/** A Fastify instance with the plugin, listening on 127.0.0.1, closed when the test ends. */
export async function startApp (
  t: Teardown,
  options: FastifyConduitOptions,
  routes: (app: FastifyInstance) => void = () => {},
  fastifyOptions: FastifyServerOptions = {}
): Promise<{ app: FastifyInstance, url: string, port: number }> {
  // Clients that aborted may leave keep-alive sockets (undici keeps them for 4 s): close them
  // with the server instead of waiting.
  const app = Fastify({ forceCloseConnections: true, ...fastifyOptions })
  await app.register(fastifyConduit, { heartbeat: false, ...options })
  routes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP')
  return { app, url: `http://127.0.0.1:${address.port}`, port: address.port }
}

/** One event-stream frame, as the client saw it. */
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
 * Splits an event stream into frames as bytes arrive, and lets a test await them. The feed
 * is the text of the response body; frames end at a blank line.
 */
export class FrameQueue {
  readonly frames: Frame[] = []
  #text = ''
  #taken = 0
  #waiters: Array<{ count: number, resolve: () => void }> = []
  #ended = false

  push (text: string): void {
    this.#text += text
    let end = this.#text.indexOf('\n\n')
    while (end !== -1) {
      this.frames.push(parseFrame(this.#text.slice(0, end + 1)))
      this.#text = this.#text.slice(end + 2)
      end = this.#text.indexOf('\n\n')
    }
    this.#notify()
  }

  end (): void {
    this.#ended = true
    this.#notify()
  }

  get ended (): boolean {
    return this.#ended
  }

  /** Resolves once `count` frames in all have arrived (or the stream ended). */
  async waitFor (count: number): Promise<Frame[]> {
    if (this.frames.length < count && !this.#ended) {
      await new Promise<void>((resolve) => this.#waiters.push({ count, resolve }))
    }
    return this.frames.slice(0, count)
  }

  /** The next `count` frames not yet taken. */
  async take (count = 1): Promise<Frame[]> {
    const frames = (await this.waitFor(this.#taken + count)).slice(this.#taken)
    this.#taken += frames.length
    return frames
  }

  /** Resolves when the stream ends. */
  async closed (): Promise<void> {
    await this.waitFor(Infinity)
  }

  #notify (): void {
    this.#waiters = this.#waiters.filter(({ count, resolve }) => {
      if (this.frames.length < count && !this.#ended) return true
      resolve()
      return false
    })
  }
}

/** An SSE response read with fetch, frame by frame. */
export async function openStream (url: string, headers: Record<string, string> = {}): Promise<FrameQueue & { abort (): void, status: number, contentType: string | null }> {
  const controller = new AbortController()
  const response = await fetch(url, { headers, signal: controller.signal })
  const queue = new FrameQueue()
  const reading = (async () => {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        queue.push(decoder.decode(chunk, { stream: true }))
      }
    } catch {
      // aborted by the test, or the server dropped the connection
    }
    queue.end()
  })()
  return Object.assign(queue, {
    status: response.status,
    contentType: response.headers.get('content-type'),
    abort: () => {
      controller.abort()
      return reading
    }
  })
}

/**
 * An SSE response read with fetch and parsed by an independent parser (eventsource-parser), as
 * its bytes arrive: the events exactly as a spec-conforming client dispatches them.
 */
export async function openParsed (url: string, headers: Record<string, string> = {}): Promise<{
  events: EventSourceMessage[]
  take (count: number): Promise<EventSourceMessage[]>
  abort (): Promise<void>
}> {
  const controller = new AbortController()
  const response = await fetch(url, { headers, signal: controller.signal })
  const events: EventSourceMessage[] = []
  let waiting: { count: number, resolve: () => void } | undefined
  let ended = false
  const notify = (): void => {
    if (waiting !== undefined && (events.length >= waiting.count || ended)) waiting.resolve()
  }
  const parser = createParser({
    onEvent: (event) => {
      events.push(event)
      notify()
    }
  })
  const reading = (async () => {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }))
      }
    } catch {
      // aborted by the test
    }
    ended = true
    notify()
  })()
  let taken = 0
  return {
    events,
    async take (count) {
      const want = taken + count
      if (events.length < want && !ended) await new Promise<void>((resolve) => { waiting = { count: want, resolve } })
      waiting = undefined
      const slice = events.slice(taken, want)
      taken += slice.length
      return slice
    },
    abort: () => {
      controller.abort()
      return reading
    }
  }
}

/**
 * A subscriber on a bare TCP socket speaking HTTP/1.0, so the body is the event stream as is
 * (no chunked encoding): light enough to open a thousand, and able to stop reading.
 */
export class RawSubscriber {
  readonly socket: Socket
  readonly queue = new FrameQueue()
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
        if (inBody) return this.queue.push(text)
        head += text
        const end = head.indexOf('\r\n\r\n')
        if (end === -1) return
        inBody = true
        resolve(head.slice(0, end))
        if (end + 4 < head.length) this.queue.push(head.slice(end + 4))
      })
    })
    this.head.catch(() => {})
    this.socket.on('close', () => this.queue.end())
  }

  close (): void {
    this.socket.destroy()
  }
}

/** A unique channel name per test, so tests sharing a bus (or a Redis) never meet. */
export function uniqueName (label: string): string {
  return `${label}-${Math.random().toString(36).slice(2, 10)}`
}

/** Log lines of a Fastify instance, which a test can await. */
export class LogCapture {
  readonly lines: Array<Record<string, unknown>> = []
  #waiters: Array<{ match: (line: Record<string, unknown>) => boolean, resolve: (line: Record<string, unknown>) => void }> = []

  /** Pass as Fastify's `logger`. */
  get logger (): FastifyServerOptions['logger'] {
    return { level: 'info', stream: { write: (text: string) => this.#push(JSON.parse(text)) } }
  }

  /** How many lines so far have a `msg` containing `text`. */
  count (text: string): number {
    return this.lines.filter((line) => String(line.msg).includes(text)).length
  }

  /** Resolves with the `nth` line (counting past ones) whose `msg` contains `text`. */
  waitFor (text: string, nth = 1): Promise<Record<string, unknown>> {
    let seen = 0
    const match = (line: Record<string, unknown>): boolean => String(line.msg).includes(text) && ++seen === nth
    const found = this.lines.find(match)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve) => this.#waiters.push({ match, resolve }))
  }

  #push (line: Record<string, unknown>): void {
    this.lines.push(line)
    this.#waiters = this.#waiters.filter(({ match, resolve }) => {
      if (!match(line)) return true
      resolve(line)
      return false
    })
  }
}

/** Takes `count` messages from a subscription (fewer if it ends first). */
export async function take<M> (subscription: AsyncIterator<M>, count: number): Promise<M[]> {
  const messages: M[] = []
  while (messages.length < count) {
    const step = await subscription.next()
    if (step.done === true) break
    messages.push(step.value)
  }
  return messages
}

/** A port nothing listens on now (listened on, then closed). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}
