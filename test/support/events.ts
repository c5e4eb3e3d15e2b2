import type { Readable } from 'node:stream'
import { createParser } from 'eventsource-parser'
import type { EventSourceMessage } from 'eventsource-parser'
import { within } from './wait.js'

/** An event as an EventSource would dispatch it. */
export interface ReceivedEvent {
  event: string
  id: string | undefined
  data: string
}

/**
 * Reads an event stream with eventsource-parser, an independent WHATWG event-stream parser, as
 * its bytes arrive: the events exactly as a spec-conforming client dispatches them, and whether
 * the body ended. `new EventReader(body)` reads a node stream, `EventReader.fetch` a fetch.
 */
export class EventReader {
  /** The events as the parser gave them (`event` undefined where the stream named none). */
  readonly messages: EventSourceMessage[] = []
  /** Body bytes received, after any gzip decoding. */
  bytes = 0
  /** An error the body failed with (a reset stream, a broken gzip stream), if any. */
  error: Error | undefined
  #taken = 0
  #ended = false
  #changed: Array<() => void> = []
  readonly #parser = createParser({
    onEvent: (message) => {
      this.messages.push(message)
      this.#notify()
    }
  })

  readonly #decoder = new TextDecoder()

  constructor (body?: Readable) {
    if (body === undefined) return
    body.on('data', (chunk: Buffer) => this.#feed(chunk))
    body.on('error', (err) => { this.error = err })
    body.on('end', () => this.#end())
    body.on('close', () => this.#end())
  }

  /** An event stream read with fetch; abort() resolves once reading has stopped. */
  static async fetch (url: string, headers: Record<string, string> = {}): Promise<EventReader & { abort (): Promise<void> }> {
    const controller = new AbortController()
    const response = await fetch(url, { headers, signal: controller.signal })
    const reader = new EventReader()
    const body = (response.body as ReadableStream<Uint8Array>).getReader()
    const reading = (async () => {
      try {
        for (let step = await body.read(); !step.done; step = await body.read()) reader.#feed(step.value)
      } catch {
        // aborted by the test
      }
      reader.#end()
    })()
    return Object.assign(reader, {
      abort: () => {
        controller.abort()
        // Node 20's fetch never settles a pending read when the abort comes after the body's
        // last bytes arrived but before its end was read; cancelling the reader settles it.
        body.cancel().catch(() => {})
        return reading
      }
    })
  }

  /** The events as an EventSource dispatches them: `message` where the stream named none. */
  get events (): ReceivedEvent[] {
    return this.messages.map(({ event, id, data }) => ({ event: event ?? 'message', id, data }))
  }

  get ended (): boolean {
    return this.#ended
  }

  /** The next `count` events not yet taken, as parsed (fewer if the body ends first). */
  async take (count: number): Promise<EventSourceMessage[]> {
    const want = this.#taken + count
    while (this.messages.length < want && !this.#ended) await this.#change()
    const taken = this.messages.slice(this.#taken, want)
    this.#taken += taken.length
    return taken
  }

  /** True once `count` events have arrived; false if the body ended or `ms` passed first. */
  received (count: number, ms: number): Promise<boolean> {
    return this.#until(() => this.messages.length >= count, ms)
  }

  /** True once the body has ended; false if `ms` passed first. */
  end (ms: number): Promise<boolean> {
    return this.#until(() => this.#ended, ms)
  }

  #feed (chunk: Uint8Array): void {
    this.bytes += chunk.length
    this.#parser.feed(this.#decoder.decode(chunk, { stream: true }))
  }

  #end (): void {
    this.#ended = true
    this.#notify()
  }

  async #until (done: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!done()) {
      if (this.#ended || Date.now() >= deadline) return done()
      await within(this.#change(), deadline - Date.now())
    }
    return true
  }

  #change (): Promise<void> {
    return new Promise<void>((resolve) => this.#changed.push(resolve))
  }

  #notify (): void {
    for (const wake of this.#changed.splice(0)) wake()
  }
}
