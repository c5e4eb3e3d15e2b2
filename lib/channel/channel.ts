import type { FastifyBaseLogger } from 'fastify'
import { publishBusError } from '../diagnostics.js'
import { ClosedError, InvalidOptionError } from '../errors.js'
import type { EventFormatter, EventSchemas } from '../schema/compile.js'
import { kAttach } from '../stream/sink.js'
import type { AttachableSource, StreamSink } from '../stream/sink.js'
import { START } from './bus.js'
import type { Bus, BusListening } from './bus.js'
import { channelEntry, isChannelFrame } from './decode-entry.js'
import type { Entry } from './decode-entry.js'
import { entryBody, entryJson } from './encode-entry.js'
import { FanOut } from './fan-out.js'
import type { ChannelCounters } from './fan-out.js'
import { noop } from './noop.js'
import { ReplaySeam } from './replay-seam.js'
import { Subscriber } from './subscriber.js'
import type { Predicate, SubscriberHost } from './subscriber.js'
import type {
  ChannelMessage,
  ChannelPublishMessage,
  ChannelSubscription,
  SubscribeOptions
} from './types.js'

export type { ChannelCounters } from './fan-out.js'
export { GAP_FRAME } from './subscriber.js'

// A selection's ways into its channel: internal, not methods users see.
const kAttachWhere = Symbol('fastify-conduit.attachWhere')
const kSubscribeWhere = Symbol('fastify-conduit.subscribeWhere')
/** `channel[kAttachAt](sink, filter, lastEventId, fromStart, arrived?)`: a stream's subscriber at a position of its own (merged.ts). */
export const kAttachAt = Symbol('fastify-conduit.attachAt')
/** `channel[kHead]()`: the newest id on the bus now (undefined: none), or null when the bus cannot say. */
export const kHead = Symbol('fastify-conduit.head')
/** `selection[kParts]()`: its channel and filter (merged.ts). */
export const kParts = Symbol('fastify-conduit.parts')

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
  /**
   * A resumable stream's record (see resume/records.ts): a reader without a Last-Event-ID reads
   * it from the start, and an entry with an empty body is its end, which ends its readers.
   */
  record?: boolean
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
  readonly #fanOut: FanOut
  readonly #host: SubscriberHost
  #listening: BusListening | undefined
  /** Stops this channel's count of subscribers being tracked by the bus (presence), while it has any. */
  #untrack: (() => void) | undefined
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

  readonly #record: boolean

  // Bound once: the bus listener is the same function for every event.
  readonly #receive = (id: string, body: string, json: string | undefined): void => {
    if (body === '' && this.#record) {
      this.#end(channelEntry(id, body, json))
      return
    }
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
    this.#record = settings.record === true
    this.#seam = new ReplaySeam(this.#bus, this.name, this.#maxBufferedBytes, {
      listen: () => this.#listen(),
      release: () => this.#release(),
      flush: () => this.#fanOut.flush(),
      malformed: (id) => this.#malformed(id),
      record: this.#record
    })
    this.#fanOut = new FanOut(this.name, this.#maxBufferedBytes, this.#counters, this.#log, this.#seam)
    this.#host = {
      name: this.name,
      maxBufferedBytes: this.#maxBufferedBytes,
      counters: this.#counters,
      log: this.#log,
      fanOut: this.#fanOut,
      seam: this.#seam,
      release: () => this.#release()
    }
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
    const id = await published.catch((err: unknown) => {
      publishBusError('publish', this.name, err)
      throw err
    })
    this.#counters.publishedEvents++
    return id
  }

  /**
   * Iterates the channel's messages: those after `lastEventId` still in the history first,
   * then live ones, with no gap and no duplicate between the two. Ends when `signal` aborts,
   * the loop breaks, or the server closes. A consumer more than `maxBufferedBytes` behind gets
   * a SlowSubscriberError from `next()`; resubscribe with the last id it received. The replay
   * waits for the consumer rather than queueing past that bound.
   *
   * Messages are `{ event, data, id }`, parsed once per event and shared by every iterator and
   * `where()` predicate of this instance: frozen, `data` and all (copy one to change it).
   * Yielded back unchanged from a `reply.sse` generator on a route without `schema.sse`, a
   * message is written as the channel formatted it (`id:` line first).
   *
   * Handed to `reply.sse`, the subscription streams as `reply.sse(channel)` does (shared bytes,
   * no per-message promise), from its own `lastEventId` (not the request's).
   *
   * @example
   * for await (const message of news.subscribe({ lastEventId, signal })) {
   *   console.log(message.id, message.event, message.data)
   * }
   */
  subscribe (options: SubscribeOptions = {}): ChannelSubscription<ChannelMessage<Events>> {
    return this.#subscribe(options, undefined)
  }

  /**
   * A view of this channel that gives each subscriber only the messages `predicate` returns
   * `true` for: per-subscriber authorization on the shared fast path. The predicate gets the
   * message as `subscribe()` gives it (`{ event, data, id }`, typed from the schema), parsed
   * once per event for all subscribers; it runs once per subscriber per event, on replay as
   * on live delivery, and the stream still gets the bytes formatted once (no per-subscriber
   * serialization). A predicate that throws ends that subscriber only (logged); data that
   * cannot be parsed (see the README) is never selected. Chained `where()`s must all pass.
   *
   * @example
   * app.get('/orders', (request, reply) =>
   *   reply.sse(orders.where((message) => message.data.userId === request.user.id)))
   */
  where (predicate: (message: ChannelMessage<Events>) => boolean): ChannelSelection<Events> {
    return new ChannelSelection(this, checkPredicate(predicate))
  }

  /**
   * `reply.sse(channel)`: replays what the client missed (after its Last-Event-ID), then
   * streams live. Resolves when the stream ends.
   */
  [kAttach] (sink: StreamSink): Promise<void> {
    return this[kAttachWhere](sink, undefined)
  }

  /**
   * A stream's subscriber, selected by `filter` when given; see {@link ChannelSelection}. A
   * record's readers come through ResumableRecords.attach instead (from the record's start).
   */
  [kAttachWhere] (sink: StreamSink, filter: Predicate | undefined): Promise<void> {
    return this[kAttachAt](sink, filter, sink.lastEventId, false)
  }

  /**
   * A stream's subscriber replaying after `lastEventId` (live without one), or, `fromStart`,
   * from the channel's first entry ({@link START}): what is retained, after a `: gap` frame
   * only if some of its entries were dropped (trimmed, expired) before the replay (a record,
   * never trimmed, reports none: see Subscriber.recordStart). `arrived` is called once the
   * replay is written and the subscriber is live.
   */
  [kAttachAt] (sink: StreamSink, filter: Predicate | undefined, position: string | undefined, fromStart: boolean, arrived?: () => void): Promise<void> {
    if (this.#closed || sink.ended) {
      sink.stop()
      return Promise.resolve()
    }
    const subscriber = new Subscriber(this.#host, filter)
    const streaming = subscriber.stream(sink)
    const lastEventId = fromStart ? START : position
    subscriber.lastEventId = lastEventId
    subscriber.recordStart = fromStart && this.#record
    this.#seam.join(subscriber, lastEventId).then(arrived, (err: Error) => subscriber.failed(err))
    return streaming
  }

  /**
   * How many subscribers this channel has on every instance sharing the bus: streams
   * (`reply.sse(channel)`, `where()` selections, merged streams) and `subscribe()` iterators.
   * This instance's are counted exactly; other instances' as they last published them:
   * redisBus refreshes them every `presenceInterval` (5 s) and forgets an instance that stopped
   * (crashed) within 3 intervals. A bus without presence counts this instance's only. Rejects
   * with FST_ERR_CONDUIT_BUS when the bus fails.
   *
   * @example
   * app.get('/news/online', async () => ({ online: await news.subscribers() }))
   */
  async subscribers (): Promise<number> {
    const bus = this.#bus
    if (bus.subscribers === undefined || this.#closed) return this.#count()
    return await bus.subscribers(this.name)
  }

  /** See {@link kHead}. */
  async [kHead] (): Promise<string | undefined | null> {
    const bus = this.#bus
    return bus.last === undefined ? null : await bus.last(this.name)
  }

  /** An iterator's subscriber, selected by `filter` when given; see {@link subscribe}. */
  #subscribe (options: SubscribeOptions, filter: Predicate | undefined): ChannelSubscription<ChannelMessage<Events>> {
    const { lastEventId, signal } = options
    if (lastEventId !== undefined && typeof lastEventId !== 'string') {
      throw new InvalidOptionError('lastEventId', 'must be a string')
    }
    const subscriber = new Subscriber(this.#host, filter)
    const subscription = subscriber.iterate(signal)
    if (this.#closed || signal?.aborted === true) {
      subscription.end()
      subscription.ready = Promise.resolve()
      return subscription as ChannelSubscription<ChannelMessage<Events>>
    }
    subscription.ready = new Promise((resolve, reject) => {
      subscriber.lastEventId = lastEventId
      this.#seam.join(subscriber, lastEventId, resolve).then(resolve, (err: Error) => {
        subscriber.failed(err)
        reject(err)
      })
    })
    // Awaiting `ready` is optional: its failure also reaches the consumer through next().
    subscription.ready.catch(noop)
    return subscription as ChannelSubscription<ChannelMessage<Events>>
  }

  /** `where(…).subscribe()`. */
  [kSubscribeWhere] (options: SubscribeOptions, filter: Predicate): ChannelSubscription<ChannelMessage<Events>> {
    return this.#subscribe(options, filter)
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
   * A record's entry (see resume/records.ts): `body` is a frame as {@link publish} makes it, or
   * `''` for the record's end; the bus keeps `history` entries. Resolves to the id assigned.
   */
  async append (body: string, json: string | undefined, history: number): Promise<string> {
    // Never closed while its source appends: the source holds it (see ResumableRecords).
    this.#publishing = body
    const published = this.#bus.publish(this.name, body, history, json)
    this.#publishing = undefined
    return await published
  }

  /**
   * A record's end arrived live: what came before it goes to everyone first; then the live
   * readers end, and those still joining or settling end when they reach it.
   */
  #end (end: Entry): void {
    this.#fanOut.flush()
    this.#seam.hold([end], 0)
    this.#fanOut.close()
    this.#seam.settle([end])
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
      this.#untrack ??= this.#bus.track?.(this.name, this.#count)
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
    if (this.#count() > 0) return
    this.#untrack?.()
    this.#untrack = undefined
    const listening = this.#listening
    if (listening === undefined) return
    this.#listening = undefined
    listening.stop()
  }

  /** Subscribers on this instance: joining, settling or live. */
  readonly #count = (): number => this.#seam.size + this.#fanOut.size

  #malformed (id: string): void {
    this.#log.warn({ channel: this.name, id }, 'fastify-conduit: a bus entry is not a channel frame; skipped')
  }
}

/**
 * What `channel.where(predicate)` returns: the channel as seen by one subscriber, each message
 * going through `predicate` first. Stream it with `reply.sse(selection)`, iterate it with
 * `selection.subscribe()`, narrow it with another `where()`. Cheap to make: one per request.
 */
export class ChannelSelection<Events extends EventSchemas | undefined = undefined> implements AttachableSource {
  readonly #channel: Channel<Events>
  readonly #filter: Predicate

  constructor (channel: Channel<Events>, filter: Predicate) {
    this.#channel = channel
    this.#filter = filter
  }

  /** The channel's name. */
  get name (): string {
    return this.#channel.name
  }

  /**
   * This selection narrowed further: a message must pass both predicates.
   *
   * @example
   * reply.sse(orders.where(ownedBy(user)).where((message) => message.event === 'shipped'))
   */
  where (predicate: (message: ChannelMessage<Events>) => boolean): ChannelSelection<Events> {
    const first = this.#filter as (message: ChannelMessage<Events>) => boolean
    checkPredicate(predicate)
    const second = predicate
    return new ChannelSelection(this.#channel, ((message: ChannelMessage<Events>) => first(message) === true && second(message) === true) as Predicate)
  }

  /**
   * `channel.subscribe(options)`, with only the messages this selection passes (replayed ones
   * too).
   *
   * @example
   * for await (const message of orders.where(ownedBy(user)).subscribe({ signal })) { … }
   */
  subscribe (options: SubscribeOptions = {}): ChannelSubscription<ChannelMessage<Events>> {
    return this.#channel[kSubscribeWhere](options, this.#filter)
  }

  /** Its channel and filter, for `app.sse.merge()`. */
  [kParts] (): { channel: Channel<Events>, filter: Predicate } {
    return { channel: this.#channel, filter: this.#filter }
  }

  /** `reply.sse(selection)`: as `reply.sse(channel)`, filtered. */
  [kAttach] (sink: StreamSink): Promise<void> {
    return this.#channel[kAttachWhere](sink, this.#filter)
  }
}

function checkPredicate<Message> (predicate: (message: Message) => boolean): Predicate {
  if (typeof predicate !== 'function') throw new InvalidOptionError('predicate', 'must be a function of the message returning a boolean')
  return predicate as Predicate
}
