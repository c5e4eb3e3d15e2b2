import type { IncomingHttpHeaders } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { EventStreamParser } from '../client/parser.js'
import type { ParsedEvent } from '../client/parser.js'
import type { OpenedResponse } from './transport.js'

/** Why the iteration ended. */
export type TestStreamEnd = 'end' | 'limit' | 'closed' | 'error'

/** Decodes one parsed event into what is yielded (parse and check its data, or pass it on). */
export type EventDecoder = (event: ParsedEvent) => unknown

/**
 * One SSE response read by a test: its status and headers, then its events, parsed as
 * EventSource parses them (WHATWG HTML §9.2.6), as an async iterator. The body is read only as
 * the test asks for events, so a test that stops asking is a client that stops reading: the
 * server's backpressure applies.
 */
export class TestEventStream<Event> implements AsyncIterableIterator<Event> {
  /** The response's status code. */
  readonly statusCode: number
  /** The response's headers (names in lower case). */
  readonly headers: IncomingHttpHeaders
  /**
   * The whole body as text when the response is not an event stream (a status other than 200,
   * or another Content-Type: an error reply, a 204, a 503); `undefined` for an event stream.
   */
  readonly text: string | undefined

  readonly #response: OpenedResponse
  readonly #chunks: AsyncIterator<Uint8Array>
  readonly #parser: EventStreamParser
  readonly #decode: EventDecoder
  readonly #limit: number
  readonly #readDelay: number
  readonly #queue: ParsedEvent[] = []
  #count = 0
  #lastEventId: string
  #ended: TestStreamEnd | undefined
  #error: Error | undefined
  #reading: Promise<unknown> = Promise.resolve()

  /** @internal Made by `streamEvents`. */
  constructor (response: OpenedResponse, text: string | undefined, options: { lastEventId: string, decode: EventDecoder, limit: number, readDelay: number }) {
    this.statusCode = response.statusCode
    this.headers = response.headers
    this.text = text
    this.#response = response
    this.#chunks = response.body[Symbol.asyncIterator]()
    this.#parser = new EventStreamParser(options.lastEventId)
    this.#lastEventId = options.lastEventId
    this.#decode = options.decode
    this.#limit = options.limit
    this.#readDelay = options.readDelay
    if (text !== undefined) this.#ended = 'end'
  }

  /**
   * The last event ID of the events yielded so far (as EventSource's `lastEventId`, it persists
   * across events; the `lastEventId` option until the first id): send it back to resume. `''`
   * when none.
   */
  get lastEventId (): string {
    return this.#lastEventId
  }

  /** Events yielded so far. */
  get count (): number {
    return this.#count
  }

  /**
   * Why the iteration ended, once it has: `'end'` the server ended the response, `'limit'`
   * the `limit` was reached (the client disconnected), `'closed'` the test closed it,
   * `'error'` the connection failed (see {@link error}); `undefined` while it goes on.
   */
  get ended (): TestStreamEnd | undefined {
    return this.#queue.length === 0 ? this.#ended : undefined
  }

  /** What the connection failed with, when `ended` is `'error'` (a reset, the server destroying it). */
  get error (): Error | undefined {
    return this.#error
  }

  [Symbol.asyncIterator] (): this {
    return this
  }

  /** The next event; done once the response ended, the limit was reached, or the stream was closed. */
  next (): Promise<IteratorResult<Event, undefined>> {
    // One read at a time: concurrent next() calls get events in order.
    const result = this.#reading.then(() => this.#next())
    this.#reading = result.catch(() => {})
    return result
  }

  /** Closes the stream (what `break` in `for await` calls). */
  async return (): Promise<IteratorResult<Event, undefined>> {
    await this.close()
    return { done: true, value: undefined }
  }

  /** Up to `count` more events (fewer when the stream ends first). */
  async take (count: number): Promise<Event[]> {
    const events: Event[] = []
    while (events.length < count) {
      const step = await this.next()
      if (step.done === true) break
      events.push(step.value)
    }
    return events
  }

  /** Every remaining event, until the response ends (or the limit). */
  async collect (): Promise<Event[]> {
    return this.take(Infinity)
  }

  /**
   * Disconnects, as a client going away does (events not yet yielded are dropped). Resolves
   * once the client side is closed; the server learns of it as it would of a real client.
   */
  async close (): Promise<void> {
    this.#queue.length = 0
    if (this.#ended === undefined) this.#ended = 'closed'
    await this.#response.hangUp()
  }

  async #next (): Promise<IteratorResult<Event, undefined>> {
    while (this.#queue.length === 0 && this.#ended === undefined) await this.#read()
    const parsed = this.#queue.shift()
    if (parsed === undefined) return { done: true, value: undefined }
    const event = this.#decode(parsed) as Event
    this.#lastEventId = parsed.id
    this.#count++
    if (this.#count === this.#limit) {
      this.#ended = 'limit'
      await this.close()
    }
    return { done: false, value: event }
  }

  async #read (): Promise<void> {
    if (this.#readDelay > 0) await sleep(this.#readDelay)
    let step: IteratorResult<Uint8Array>
    try {
      step = await this.#chunks.next()
    } catch (err) {
      this.#ended ??= 'error'
      this.#error = err as Error
      return
    }
    if (step.done === true) {
      this.#ended ??= 'end'
      return
    }
    this.#queue.push(...this.#parser.feed(step.value))
  }
}
