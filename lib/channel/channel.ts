import type { FastifyBaseLogger } from 'fastify'
import { ClosedError, InvalidOptionError } from '../errors.js'
import type { EventFormatter, EventSchemas } from '../schema/compile.js'
import { kAttach } from '../stream/sink.js'
import type { AttachableSource, StreamSink } from '../stream/sink.js'
import type { Bus, BusListening } from './bus.js'
import { channelEntry, decodeMessage, isChannelFrame } from './decode-entry.js'
import { entryBody, entryJson } from './encode-entry.js'
import { FanOut } from './fan-out.js'
import type { ChannelCounters, SinkReceiver } from './fan-out.js'
import { noop } from './noop.js'
import { ReplaySeam } from './replay-seam.js'
import type { Receiver } from './replay-seam.js'
import { Subscription } from './subscription.js'
import type {
  ChannelMessage,
  ChannelPublishMessage,
  ChannelSubscription,
  SubscribeOptions
} from './types.js'

export type { ChannelCounters } from './fan-out.js'

/**
 * Written before a replay that could not start right after the client's Last-Event-ID (older
 * than the history, or unknown). A comment frame: EventSource ignores it, so applications need
 * not handle anything; a client that reads comments learns that events were missed.
 */
export const GAP_FRAME = ': gap\n\n'

/** `channel[kFlush]()`: hands this turn's live batch to the subscribers now (the server is closing). */
export const kFlush = Symbol('fastify-conduit.channel.flush')

/** What the plugin resolved for one channel. */
export interface ChannelSettings {
  name: string
  bus: Bus
  /** The compiled `schema`, or none for a channel without one. */
  format: EventFormatter | undefined
  history: number
  maxBufferedBytes: number
  counters: ChannelCounters
  log: FastifyBaseLogger
  /** Called once when the channel closes. */
  onClose: () => void
}

/**
 * A named broadcast with replay, created by `app.sse.channel(name, options)`. Publishing
 * validates and formats an event once and hands it to the bus; every instance sharing the bus
 * delivers it to its subscribers: the streams of `reply.sse(channel)` and the iterators of
 * `channel.subscribe()`.
 *
 * Delivery is batched: what arrives within one event-loop turn becomes one Buffer, and that
 * same Buffer is written to every stream, so a broadcast costs one allocation whatever the
 * number of subscribers.
 *
 * @example
 * const news = app.sse.channel('news', { schema: { headline: Headline }, history: 1000 })
 * app.get('/news', (request, reply) => reply.sse(news)) // replays after Last-Event-ID, then live
 * const id = await news.publish({ event: 'headline', data: { title: 'SSE ships' } })
 */
export class Channel<Events extends EventSchemas | undefined = undefined> implements AttachableSource {
  /** The channel's name, as given to `app.sse.channel()`. */
  readonly name: string
  readonly #bus: Bus
  readonly #format: EventFormatter | undefined
  readonly #history: number
  readonly #maxBufferedBytes: number
  readonly #counters: ChannelCounters
  readonly #log: FastifyBaseLogger
  readonly #onClose: () => void
  readonly #seam: ReplaySeam
  readonly #fanOut: FanOut<ChannelMessage<Events>>
  #listening: BusListening | undefined
  #closed = false
  /**
   * The body this channel is handing to the bus, while the bus's publish runs synchronously:
   * memoryBus delivers to listeners within that call, and a body that is this very string
   * (same reference) was formatted here, so its shape need not be checked again (the check
   * flattens and scans the frame: measurable in `bench/wire-micro.mjs`). Any other body
   * (another instance's, a Redis reply) is checked. Left set if publish throws: harmless, the
   * body is well-formed.
   */
  #publishing: string | undefined

  // Bound once: the bus listener is the same function for every event.
  readonly #receive = (id: string, body: string, json: string | undefined): void => {
    if (body !== this.#publishing && !isChannelFrame(body)) {
      this.#malformed(id)
      return
    }
    this.#fanOut.add(channelEntry(id, body, json))
  }

  // The bus lost live entries: the live subscribers end, and resume through replay (streams
  // reconnect with Last-Event-ID), which reports the gap.
  readonly #gap = (): void => { this.#fanOut.close() }

  constructor (settings: ChannelSettings) {
    this.name = settings.name
    this.#bus = settings.bus
    this.#format = settings.format
    this.#history = settings.history
    this.#maxBufferedBytes = settings.maxBufferedBytes
    this.#counters = settings.counters
    this.#log = settings.log
    this.#onClose = settings.onClose
    this.#seam = new ReplaySeam(this.#bus, this.name, this.#maxBufferedBytes, {
      listen: () => this.#listen(),
      release: () => this.#release(),
      flush: () => this.#fanOut.flush(),
      malformed: (id) => this.#malformed(id)
    })
    this.#fanOut = new FanOut(this.name, this.#maxBufferedBytes, this.#counters, this.#log, this.#seam)
  }

  /**
   * Validates and formats `message` once, then publishes it on the bus. Resolves to the id the
   * bus assigned (opaque, strictly increasing). A message the schema rejects, or one with an
   * `id`, `retry` or `comment`, rejects with a coded error and nothing is sent. Without a
   * schema the frame is what `reply.sse` writes for the same message (a string verbatim,
   * anything else as JSON); with one, the data is always JSON.
   *
   * @example
   * const id = await news.publish({ event: 'headline', data: { title: 'SSE ships' } })
   */
  async publish (message: ChannelPublishMessage<Events>): Promise<string> {
    if (this.#closed) throw new ClosedError(`channel "${this.name}"`)
    const body = entryBody(message, this.#format)
    const json = entryJson(message, this.#format)
    this.#publishing = body
    const published = this.#bus.publish(this.name, body, this.#history, json)
    this.#publishing = undefined
    const id = await published
    this.#counters.publishedEvents++
    return id
  }

  /**
   * Iterates the channel's messages: those after `lastEventId` still in the history first,
   * then live ones, with no gap and no duplicate between the two. Ends when `signal` aborts,
   * the loop breaks, or the server closes. A consumer more than `maxBufferedBytes` behind gets
   * a SlowSubscriberError from `next()`; resubscribe with the last id it received.
   *
   * @example
   * for await (const message of news.subscribe({ lastEventId, signal })) {
   *   console.log(message.id, message.event, message.data)
   * }
   */
  subscribe (options: SubscribeOptions = {}): ChannelSubscription<ChannelMessage<Events>> {
    const { lastEventId, signal } = options
    if (lastEventId !== undefined && typeof lastEventId !== 'string') {
      throw new InvalidOptionError('lastEventId', 'must be a string')
    }
    const fanOut = this.#fanOut
    const onAbort = (): void => { subscription.return() }
    const receiver: Receiver = {
      left: false,
      pending: [],
      pendingBytes: 0,
      after: undefined,
      write: (entries, gap) => {
        if (gap) subscription.markGap()
        for (const entry of entries) {
          fanOut.push(subscription, decodeMessage(entry, this.name, this.#log), entry.frame.length)
        }
      },
      live: () => { fanOut.addIterator(subscription) },
      close: () => subscription.end(),
      drop: () => fanOut.tooSlow(subscription)
    }
    const subscription = new Subscription<ChannelMessage<Events>>(this.#maxBufferedBytes, () => {
      receiver.left = true
      signal?.removeEventListener('abort', onAbort)
      fanOut.deleteIterator(subscription)
      this.#seam.leave(receiver)
      this.#release()
    })
    if (this.#closed || signal?.aborted === true) {
      subscription.end()
      subscription.ready = Promise.resolve()
      return subscription
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    subscription.ready = this.#seam.join(receiver, lastEventId).catch((err: Error) => {
      subscription.fail(err)
      throw err
    })
    // Awaiting `ready` is optional: its failure also reaches the consumer through next().
    subscription.ready.catch(noop)
    return subscription
  }

  /**
   * `reply.sse(channel)`: replays what the client missed (after its Last-Event-ID), then
   * streams live. Resolves when the stream ends.
   */
  [kAttach] (sink: StreamSink): Promise<void> {
    const lastEventId = sink.lastEventId
    if (this.#closed || sink.ended) {
      sink.stop()
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      const detach = (): void => {
        if (receiver.left) return
        receiver.left = true
        this.#fanOut.deleteSink(receiver)
        this.#seam.leave(receiver)
        this.#release()
        resolve()
      }
      const receiver: SinkReceiver = {
        sink,
        left: false,
        pending: [],
        pendingBytes: 0,
        after: undefined,
        write: (entries, gap) => {
          if (gap) sink.writeFrame(GAP_FRAME)
          for (const entry of entries) sink.writeFrame(entry.frame)
          this.#counters.sentEvents += entries.length
        },
        live: () => { this.#fanOut.addSink(receiver) },
        close: () => {
          detach()
          sink.stop()
        },
        drop: () => {
          detach()
          this.#counters.slowDisconnects++
          this.#log.warn({ channel: this.name, queued: sink.queued },
            'fastify-conduit: a channel subscriber fell behind maxBufferedBytes; disconnected (it can resume with Last-Event-ID)')
          sink.abort()
        }
      }
      sink.onEnd(detach)
      this.#seam.join(receiver, lastEventId).catch((err: unknown) => {
        if (!receiver.left) this.#log.error({ err, channel: this.name }, 'fastify-conduit: channel subscription failed; the stream ends')
        receiver.close()
      })
    })
  }

  /**
   * Ends every subscriber of this channel on this instance (streams end cleanly, iterators
   * finish) and forgets the channel: `publish` then rejects, and `app.sse.channel(name)` makes
   * a new one. The history stays on the bus. The server's close does this for every channel.
   *
   * @example
   * room.close() // the room is gone; its clients' streams end
   */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#onClose()
    this.#seam.close()
    this.#fanOut.close()
    this.#release()
  }

  /**
   * Delivers what the bus has handed over and is batched for the next turn, now: the server
   * is closing, and its streams end right after this (see ChannelRegistry.flush).
   */
  [kFlush] (): void {
    this.#fanOut.flush()
  }

  #listen (): BusListening {
    let listening = this.#listening
    if (listening === undefined) {
      const started = this.#bus.listen(this.name, this.#receive, this.#gap)
      listening = started
      this.#listening = started
      // A bus that could not listen is forgotten, so the next subscriber tries again.
      started.ready.catch(() => {
        if (this.#listening === started) this.#listening = undefined
        started.stop()
      })
    }
    return listening
  }

  /** Stops listening on the bus once nobody subscribes: idle channels cost the bus nothing. */
  #release (): void {
    if (this.#seam.size + this.#fanOut.size > 0) return
    const listening = this.#listening
    if (listening === undefined) return
    this.#listening = undefined
    listening.stop()
  }

  #malformed (id: string): void {
    this.#log.warn({ channel: this.name, id }, 'fastify-conduit: a bus entry is not a channel frame; skipped')
  }
}
