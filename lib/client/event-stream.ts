import {
  ClientContentTypeError,
  ClientIdleTimeoutError,
  ClientNetworkError,
  ClientStatusError
} from './errors.js'
import { IdleTimer } from './idle-timer.js'
import { requestHeaders } from './options.js'
import type { Config, ReconnectInfo } from './options.js'
import { EventStreamParser } from './parser.js'
import type { ParsedEvent } from './parser.js'
import { reconnectDelay, retryAfterDelay, wait } from './reconnect.js'

/**
 * The comment a fastify-conduit channel writes (`: gap`) when the history after the client's
 * Last-Event-ID is gone. The client may not import the server's constant: a test checks that
 * the two agree.
 */
export const GAP_COMMENT = 'gap'

/**
 * Statuses that mean "not now" rather than "no": with a valid `Retry-After` the client waits
 * and tries again (RFC 9110 §15.6.4 503 Service Unavailable, which `maxConnections` answers;
 * RFC 6585 §4 429 Too Many Requests, which a rate limiter answers).
 */
const RETRYABLE_STATUSES = new Set([429, 503])

/**
 * The events of one SSE endpoint, read with `for await`. Nothing is requested until iteration
 * starts; leaving the loop (`break`, `return`, an error) closes the connection. Iterating again
 * later opens a new connection that resumes after `lastEventId`.
 */
export interface ClientEventStream<Event> extends AsyncIterable<Event> {
  /**
   * The last event ID received (or given as the `lastEventId` option): the id of the event
   * last yielded, or of a later frame that carried only an `id`. `''` when none.
   */
  readonly lastEventId: string
}

/**
 * @deprecated The client's stream is named {@link ClientEventStream} (the server has an
 * EventStream of its own); this alias stays so that existing code compiles.
 */
export type EventStream<Event> = ClientEventStream<Event>

/** A {@link ClientEventStream} over `fetch`: one request per connection, reconnecting as EventSource does. */
export class ReconnectingEventStream<Event> implements ClientEventStream<Event> {
  readonly #config: Config
  #lastEventId: string
  #retry: number | undefined

  constructor (config: Config) {
    this.#config = config
    this.#lastEventId = config.lastEventId
  }

  get lastEventId (): string {
    return this.#lastEventId
  }

  [Symbol.asyncIterator] (): AsyncIterator<Event> {
    return this.#run()
  }

  async * #run (): AsyncGenerator<Event, void, undefined> {
    const config = this.#config
    const signal = config.signal
    let attempt = 0
    for (;;) {
      if (signal?.aborted === true) return
      // One controller per request: aborting it ends the fetch and the body read, whether the
      // user aborted, the consumer left the loop, the connection went idle, or an error ends
      // the iteration.
      const controller = new AbortController()
      const abort = (): void => { controller.abort() }
      signal?.addEventListener('abort', abort)
      const idle = config.idleTimeout === false ? undefined : new IdleTimer(config.idleTimeout, abort)
      let failed = false
      let failure: unknown
      // Set when the server asked, with Retry-After, to be asked again later.
      let retryAfter: number | undefined
      try {
        // Made for every attempt: a function gives a reconnection a fresh token.
        const init = await this.#requestInit(controller.signal)
        if (isAborted(signal)) return
        let response: Response | undefined
        // Called as a plain function: a browser's fetch called as a method of another object
        // throws "Illegal invocation".
        const fetch = config.fetch
        try {
          idle?.waiting()
          response = await fetch(config.url, init)
          idle?.arrived()
        } catch (err) {
          failed = true
          failure = err
        }
        if (response !== undefined) {
          // HTML §9.2.3: a 200 with Content-Type text/event-stream "announces the connection";
          // any other answer "fails the connection" (no reconnection). A 204 is how a
          // fastify-conduit server tells a client to stop: it ends the iteration cleanly.
          // Beyond EventSource: an overloaded server's 503 (or a rate limiter's 429) with a
          // valid Retry-After is retried after that delay.
          const status = response.status
          if (status === 204) return
          if (status !== 200) {
            if (config.reconnect && RETRYABLE_STATUSES.has(status)) {
              retryAfter = retryAfterDelay(response.headers.get('retry-after'), Date.now(), config.maxDelay)
            }
            if (retryAfter === undefined) throw new ClientStatusError(status)
            failed = true
            failure = new ClientStatusError(status)
          } else {
            const contentType = response.headers.get('content-type') ?? ''
            if (!isEventStream(contentType)) throw new ClientContentTypeError(contentType)
            attempt = 0
            // A body-less 200 (a custom fetch can make one) reads as an empty stream.
            if (response.body !== null) {
              const dropped = yield * this.#readBody(response.body, idle)
              if (dropped !== undefined) {
                failed = true
                failure = dropped.error
              }
            }
          }
        }
      } finally {
        idle?.stop()
        controller.abort()
        signal?.removeEventListener('abort', abort)
      }
      if (isAborted(signal)) return
      // The idle timer aborted the request: whatever fetch or the read threw, this is why.
      if (idle?.fired === true) failure = new ClientIdleTimeoutError(config.idleTimeout as number)
      if (!config.reconnect) {
        if (failed) throw new ClientNetworkError(failure)
        return
      }
      attempt++
      const delay = retryAfter ?? reconnectDelay(attempt, this.#retry, config.minDelay, config.maxDelay)
      const info: ReconnectInfo = { attempt, delay, lastEventId: this.#lastEventId }
      if (failed) info.error = failure
      config.onReconnect?.(info)
      await wait(delay, signal)
    }
  }

  /**
   * Yields the events of one response body, until it ends (`undefined`) or its read fails
   * (`{ error }`: the connection dropped, or the idle timer aborted it).
   */
  async * #readBody (body: ReadableStream<Uint8Array>, idle: IdleTimer | undefined): AsyncGenerator<Event, { error: unknown } | undefined, undefined> {
    const config = this.#config
    const reader = body.getReader()
    // The last event ID and the reconnection time outlive the connection; the parser's buffers
    // do not: "If the file ends in the middle of an event [...] the incomplete event is not
    // dispatched."
    const events: ParsedEvent[] = []
    // Where the server's `: gap` fell among the events of the current chunk.
    const gaps: number[] = []
    const parser = new EventStreamParser(this.#lastEventId, {
      maxEventSize: config.maxEventSize,
      onComment: config.onGap === undefined
        ? undefined
        : (comment) => { if (comment === GAP_COMMENT) gaps.push(events.length) }
    })
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>
      try {
        idle?.waiting()
        chunk = await reader.read()
        idle?.arrived()
      } catch (error) {
        return { error }
      }
      if (chunk.done) return undefined
      events.length = 0
      gaps.length = 0
      // An event too large fails the stream, but only after the events before it in the same
      // chunk: they arrived whole, and the consumer (and Last-Event-ID) must have them.
      let failure: unknown
      try {
        parser.feed(chunk.value, events)
      } catch (error) {
        failure = error
      }
      if (parser.retry !== undefined) this.#retry = parser.retry
      let gap = 0
      for (let i = 0; i <= events.length; i++) {
        // onGap runs where the comment was: after the events before it, before those after it.
        for (; gap < gaps.length && gaps[gap] === i; gap++) config.onGap?.({ lastEventId: this.#lastEventId })
        if (i === events.length) break
        const parsed = events[i]
        const event = (config.decode === undefined
          ? parsed
          : { ...parsed, data: config.decode(parsed.event, parsed.data) }) as Event
        // Before the yield: a consumer that stops here resumes after this very event.
        this.#lastEventId = parsed.id
        yield event
      }
      if (failure !== undefined) throw failure
      this.#lastEventId = parser.lastEventId
    }
  }

  async #requestInit (signal: AbortSignal): Promise<RequestInit> {
    const config = this.#config
    const headers = typeof config.headers === 'function' ? requestHeaders(await config.headers()) : new Headers(config.headers)
    // §9.2.3: "If the event source's last event ID string is not the empty string, set
    // `Last-Event-ID`/last event ID string, encoded as UTF-8, in request's header list."
    if (this.#lastEventId !== '') headers.set('last-event-id', utf8ByteString(this.#lastEventId))
    return { method: config.method, headers, body: config.body, signal }
  }
}

// A function, not an inline check: TypeScript would keep `aborted` narrowed across awaits.
function isAborted (signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

/** The MIME type essence (before any `;` parameter) must be text/event-stream. */
function isEventStream (contentType: string): boolean {
  const semicolon = contentType.indexOf(';')
  const essence = semicolon === -1 ? contentType : contentType.slice(0, semicolon)
  return essence.trim().toLowerCase() === 'text/event-stream'
}

/**
 * Header values are byte strings (each character a byte), so an id with characters past
 * U+00FF would make `fetch` throw, and one with U+0080-U+00FF would go out as Latin-1. The
 * spec sends the id "encoded as UTF-8": these are its bytes, one character each.
 */
function utf8ByteString (text: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text
  let bytes = ''
  for (const byte of new TextEncoder().encode(text)) bytes += String.fromCharCode(byte)
  return bytes
}
