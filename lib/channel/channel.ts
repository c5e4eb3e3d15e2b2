import type { FastifyBaseLogger } from 'fastify'
import {
  ClosedError,
  InvalidIdError,
  InvalidMessageError,
  InvalidOptionError,
  SlowSubscriberError
} from '../errors.js'
import type { EventFormatter, EventSchemas } from '../schema/compile.js'
import { kAttach } from '../stream/sink.js'
import type { AttachableSource, StreamSink } from '../stream/sink.js'
import { assertMessage, formatEvent } from '../format/format.js'
import { DATA, EVENT, ID } from '../wire/format.js'
import type { SSEMessage } from '../wire/message.js'
import type { Bus, BusEntry, BusListening, BusReplay } from './bus.js'
import { Subscription } from './subscription.js'
import type {
  ChannelMessage,
  ChannelPublishMessage,
  ChannelSubscription,
  SubscribeOptions
} from './types.js'

/**
 * Written before a replay that could not start right after the client's Last-Event-ID (older
 * than the history, or unknown). A comment frame: EventSource ignores it, so applications need
 * not handle anything; a client that reads comments learns that events were missed.
 */
export const GAP_FRAME = ': gap\n\n'

/** Counters shared by the channels of one Fastify instance (see `app.sse.stats()`). */
export interface ChannelCounters {
  publishedEvents: number
  sentEvents: number
  slowDisconnects: number
}

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

/** A live entry: what the bus delivered, and its full frame, built once for every subscriber. */
interface Entry extends BusEntry {
  readonly frame: string
}

/**
 * A subscriber of either kind (a stream's sink, or a `subscribe()` iterator), on its way
 * through the channel: joining (waiting for the bus and the replay, holding live entries),
 * settling (caught up, skipping live entries its replay already held), then live.
 */
interface Receiver {
  /** True once it is gone (client left, iterator returned, dropped, channel closed). */
  left: boolean
  /** Live entries delivered while it was joining. */
  pending: Entry[]
  pendingBytes: number
  /** While settling: the last id it was given; live entries up to it are skipped. */
  after: string | undefined
  /** Writes entries one by one (replay, catch-up): the per-subscriber path. */
  write (entries: readonly Entry[], gap: boolean): void
  /** Joins the shared live path. */
  live (): void
  /** Ends it because the channel closes. */
  close (): void
  /** Ends it because it fell more than `maxBufferedBytes` behind. */
  drop (): void
}

interface SinkReceiver extends Receiver {
  readonly sink: StreamSink
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
  readonly #sinks = new Set<SinkReceiver>()
  readonly #iterators = new Set<Subscription<ChannelMessage<Events>>>()
  readonly #joining = new Set<Receiver>()
  readonly #settling = new Set<Receiver>()
  #listening: BusListening | undefined
  #entries: Entry[] = []
  #batch = ''
  #flushScheduled = false
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

  // Bound once: the bus listener and the flush task are the same functions for every event.
  readonly #receive = (id: string, body: string, json: string | undefined): void => {
    if (body !== this.#publishing && !isChannelFrame(body)) {
      this.#malformed(id)
      return
    }
    const frame = ID + id + '\n' + body
    this.#entries.push({ id, body, json, frame })
    this.#batch += frame
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      setImmediate(this.#flush)
    }
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false
    const entries = this.#entries
    // Already flushed early, by a subscriber arriving (see #arrive).
    if (entries.length === 0) return
    const batch = this.#batch
    this.#entries = []
    this.#batch = ''
    for (const receiver of this.#joining) this.#hold(receiver, entries, batch.length)
    if (this.#sinks.size > 0) this.#broadcast(entries.length, Buffer.from(batch))
    if (this.#iterators.size > 0) this.#deliver(entries)
    // After the shared paths, so that a receiver settling now does not get this batch twice.
    if (this.#settling.size > 0) this.#settle(entries)
  }

  constructor (settings: ChannelSettings) {
    this.name = settings.name
    this.#bus = settings.bus
    this.#format = settings.format
    this.#history = settings.history
    this.#maxBufferedBytes = settings.maxBufferedBytes
    this.#counters = settings.counters
    this.#log = settings.log
    this.#onClose = settings.onClose
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
    const body = this.#body(message)
    // Without a schema a string is written verbatim, as reply.sse writes it. Its data lines
    // cannot give it back exactly (the string '42' would read as a number, CRLF as LF), so the
    // string goes on the bus beside the frame, as JSON (which survives any store, lone
    // surrogates included). The wire carries no marker: clients see what reply.sse sends.
    const data = (message as SSEMessage).data
    const json = this.#format === undefined && typeof data === 'string' ? JSON.stringify(data) : undefined
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
    const onAbort = (): void => { subscription.return() }
    const receiver: Receiver = {
      left: false,
      pending: [],
      pendingBytes: 0,
      after: undefined,
      write: (entries, gap) => {
        if (gap) subscription.markGap()
        for (const entry of entries) this.#push(subscription, this.#message(entry), entry.frame.length)
      },
      live: () => { this.#iterators.add(subscription) },
      close: () => subscription.end(),
      drop: () => this.#tooSlow(subscription)
    }
    const subscription = new Subscription<ChannelMessage<Events>>(this.#maxBufferedBytes, () => {
      receiver.left = true
      signal?.removeEventListener('abort', onAbort)
      this.#iterators.delete(subscription)
      this.#settling.delete(receiver)
      this.#release()
    })
    if (this.#closed || signal?.aborted === true) {
      subscription.end()
      subscription.ready = Promise.resolve()
      return subscription
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    subscription.ready = this.#join(receiver, lastEventId).catch((err: Error) => {
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
        this.#sinks.delete(receiver)
        this.#settling.delete(receiver)
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
        live: () => { this.#sinks.add(receiver) },
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
      this.#join(receiver, lastEventId).catch((err: unknown) => {
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
    for (const receiver of this.#joining) receiver.close()
    for (const receiver of this.#settling) receiver.close()
    for (const receiver of this.#sinks) receiver.close()
    for (const subscription of this.#iterators) subscription.end()
    this.#release()
  }

  /** The frame without its `id:` line: what goes on the bus. */
  #body (message: unknown): string {
    assertMessage(message)
    if (message.id !== undefined) throw new InvalidIdError('a channel assigns ids itself; publish without one')
    if (message.retry !== undefined || message.comment !== undefined) {
      throw new InvalidMessageError('a channel carries events: only event and data')
    }
    if (message.event === undefined && message.data === undefined) {
      throw new InvalidMessageError('it has neither event nor data')
    }
    if (this.#format !== undefined) return this.#format(message)
    // Exactly what reply.sse writes for the same message (which has no id, retry or comment,
    // checked above): a string verbatim, anything else JSON.
    return formatEvent(message)
  }

  /**
   * Registers `receiver`, waits for the bus to listen and for the replay (if any), then lets
   * it arrive, in the same synchronous step as the last await: nothing (a flush, a close) can
   * come between the end of its joining and its arrival.
   */
  async #join (receiver: Receiver, lastEventId: string | undefined): Promise<void> {
    this.#joining.add(receiver)
    try {
      await this.#listen().ready
      const replay = lastEventId === undefined || receiver.left ? undefined : await this.#bus.replay(this.name, lastEventId)
      this.#joining.delete(receiver)
      if (!receiver.left) this.#arrive(receiver, lastEventId, replay)
    } finally {
      this.#joining.delete(receiver)
      if (receiver.left) this.#release()
    }
  }

  /**
   * The seam between replay and live. The bus started live delivery before the replay was
   * read, so the two overlap and never leave a gap; ids drop the overlap, in two places:
   *
   * - now: the replay, then the live entries held while joining (and those not yet flushed,
   *   which are flushed to the others at once) that the replay did not already hold;
   * - then, while settling: a replay may run ahead of live delivery (Redis reads the two on
   *   different connections), so live entries up to the last id given are skipped, until the
   *   first newer one, when the receiver joins the shared path.
   */
  #arrive (receiver: Receiver, lastEventId: string | undefined, replay: BusReplay | undefined): void {
    const entries: Entry[] = []
    let last: string | undefined
    if (replay !== undefined) {
      for (const { id, body, json } of replay.entries) {
        if (isChannelFrame(body)) entries.push({ id, body, json, frame: ID + id + '\n' + body })
        else this.#malformed(id)
      }
      const replayed = replay.entries.length
      last = replayed > 0 ? replay.entries[replayed - 1].id : replay.complete ? lastEventId : undefined
    }
    for (const held of [receiver.pending, this.#entries]) {
      for (const entry of held) {
        if (last === undefined || this.#bus.compare(entry.id, last) > 0) entries.push(entry)
      }
    }
    receiver.pending = []
    this.#flush()
    receiver.write(entries, replay !== undefined && !replay.complete)
    if (receiver.left) return
    const after = entries.length > 0 ? entries[entries.length - 1].id : last
    if (replay === undefined || after === undefined) {
      receiver.live()
    } else {
      receiver.after = after
      this.#settling.add(receiver)
    }
  }

  /** Settling receivers get the entries past their last id, then join the shared path. */
  #settle (entries: Entry[]): void {
    for (const receiver of this.#settling) {
      const after = receiver.after as string
      let first = 0
      while (first < entries.length && this.#bus.compare(entries[first].id, after) <= 0) first++
      if (first === entries.length) continue
      this.#settling.delete(receiver)
      receiver.after = undefined
      receiver.write(first === 0 ? entries : entries.slice(first), false)
      if (!receiver.left) receiver.live()
    }
  }

  #listen (): BusListening {
    let listening = this.#listening
    if (listening === undefined) {
      const started = this.#bus.listen(this.name, this.#receive)
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
    if (this.#joining.size + this.#settling.size + this.#sinks.size + this.#iterators.size > 0) return
    const listening = this.#listening
    if (listening === undefined) return
    this.#listening = undefined
    listening.stop()
  }

  #hold (receiver: Receiver, entries: Entry[], size: number): void {
    receiver.pendingBytes += size
    if (receiver.pendingBytes > this.#maxBufferedBytes) {
      receiver.drop()
      return
    }
    for (const entry of entries) receiver.pending.push(entry)
  }

  /**
   * The hot path: the same bytes to every stream. A stream whose queue would pass
   * maxBufferedBytes is dropped instead: one slow client must neither hold the others back
   * nor make the server buffer without bound. An idle one always gets the batch, however big.
   */
  #broadcast (count: number, bytes: Buffer): void {
    const max = this.#maxBufferedBytes
    const size = bytes.length
    for (const receiver of this.#sinks) {
      const queued = receiver.sink.queued
      if (queued > 0 && queued + size > max) receiver.drop()
      else receiver.sink.writeBytes(bytes)
    }
    this.#counters.sentEvents += count * this.#sinks.size
  }

  /** Iterators get messages parsed once per entry, shared by all of them. */
  #deliver (entries: Entry[]): void {
    for (const entry of entries) {
      const message = this.#message(entry)
      if (message === undefined) continue
      const size = entry.frame.length
      for (const subscription of this.#iterators) this.#push(subscription, message, size)
    }
  }

  #push (subscription: Subscription<ChannelMessage<Events>>, message: ChannelMessage<Events> | undefined, size: number): void {
    if (message !== undefined && subscription.push(message, size, this.#overflow)) this.#counters.sentEvents++
  }

  readonly #overflow = (): Error => {
    this.#counters.slowDisconnects++
    return new SlowSubscriberError(this.name, this.#maxBufferedBytes)
  }

  #tooSlow (subscription: Subscription<ChannelMessage<Events>>): void {
    subscription.fail(this.#overflow())
  }

  /**
   * Reads a message back from an entry (its body a channel frame, see isChannelFrame): the
   * event name from the `event:` line, the data from the entry's `json` (string data) or else
   * from the data lines, which are then JSON. Data that is not JSON (written by something
   * else, or by a serializer that wrote a string unescaped) cannot be given back: skipped.
   */
  #message (entry: BusEntry): ChannelMessage<Events> | undefined {
    const { id, body } = entry
    let event = 'message'
    let start = 0
    if (body.startsWith(EVENT)) {
      start = body.indexOf('\n') + 1
      event = body.slice(EVENT.length, start - 1)
    }
    let json = entry.json
    if (json === undefined) {
      // The data lines joined as a client joins them; JSON is one line but for raw serializers.
      json = body.slice(start + DATA.length, -2)
      if (json.indexOf('\n') !== -1) json = json.split(DATA_LINE_BREAK).join('\n')
    }
    let data: unknown
    try {
      data = json === '' ? undefined : JSON.parse(json)
    } catch {
      this.#log.warn({ channel: this.name, id }, 'fastify-conduit: a channel event\'s data is not JSON; subscribe() iterators skip it')
      return undefined
    }
    return { event, data, id } as ChannelMessage<Events>
  }

  #malformed (id: string): void {
    this.#log.warn({ channel: this.name, id }, 'fastify-conduit: a bus entry is not a channel frame; skipped')
  }
}

const DATA_LINE_BREAK = '\n' + DATA

/**
 * Whether a bus entry's body is a frame a channel writes: an optional `event:` line, one or
 * more `data:` lines, the blank line, no CR. Anything else (written to the bus by something
 * other than a channel, or corrupted) is never streamed: it could end early and merge with the
 * next event, or carry an `id:` or `retry:` line of its own. A few `indexOf` scans per entry,
 * once per instance however many subscribers.
 */
function isChannelFrame (body: string): boolean {
  if (body.indexOf('\r') !== -1) return false
  let line = body.startsWith(EVENT) ? body.indexOf('\n') + 1 : 0
  do {
    if (!body.startsWith(DATA, line)) return false
    line = body.indexOf('\n', line) + 1
    if (line === 0) return false
  } while (line < body.length - 1)
  return line === body.length - 1 && body.charCodeAt(line) === LF
}

const LF = 0x0A

function noop (): void {}
