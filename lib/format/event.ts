import { HTTP1_HEADERS, HTTP2_HEADERS } from '../wire/index.js'
import { formatEvent } from './format.js'

/**
 * One server-sent event, validated when it is made: a bad `event`, `id` or `retry` throws at
 * construction, so an `SSEEvent` that exists can always be written.
 *
 * @example
 * const event = new SSEEvent('Hello from server!', 'message', '123', 3000)
 * event.format() // 'event: message\nid: 123\nretry: 3000\ndata: Hello from server!\n\n'
 */
export class SSEEvent {
  readonly data: unknown
  readonly event: string | undefined
  readonly id: string | number | undefined
  readonly retry: number | undefined
  readonly #frame: string

  constructor (data: unknown, event?: string, id?: string | number, retry?: number) {
    this.data = data
    this.event = event
    this.id = id
    this.retry = retry
    this.#frame = formatEvent({ data: data ?? '', event, id, retry })
  }

  /** The event as event-stream text, ending with the blank line that dispatches it. */
  format (): string {
    return this.#frame
  }
}

/** Options of {@link SSEStream.getHeaders}. */
export interface SSEHeadersOptions {
  /**
   * HTTP/2 forbids connection-specific headers, so `Connection: keep-alive` is left out.
   * @default false
   */
  http2?: boolean
}

/**
 * Helper for hand-built SSE responses (outside Fastify or with `reply.hijack()`).
 *
 * @example
 * const stream = new SSEStream()
 * res.writeHead(200, stream.getHeaders())
 * res.write(stream.sendEvent('Current time: 12:30:45', 'time', '1'))
 */
export class SSEStream {
  /** The response headers of an event stream. */
  getHeaders (options: SSEHeadersOptions = {}): Record<string, string> {
    return options.http2 === true ? { ...HTTP2_HEADERS } : { ...HTTP1_HEADERS }
  }

  /** Formats one event; the same rules and errors as {@link SSEEvent}. */
  sendEvent (data: unknown, event?: string, id?: string | number, retry?: number): string {
    return new SSEEvent(data, event, id, retry).format()
  }
}
