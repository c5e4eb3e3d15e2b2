import type { FastifyBaseLogger } from 'fastify'
import { ClosedError, RecordLimitError, ResumeUnsupportedError } from '../errors.js'
import type { Bus } from '../channel/bus.js'
import { kAttachAt } from '../channel/channel.js'
import { kAttach } from '../stream/sink.js'
import type { AttachableSource, StreamSink } from '../stream/sink.js'
import { closeIterator, openSource } from '../stream/source.js'
import { noop } from '../channel/noop.js'
import type { OpenSource } from '../stream/source.js'
import type { InvalidEventPolicy } from '../types.js'
import type { EventFormatter } from '../schema/compile.js'
import { entryBody, entryJson } from '../channel/encode-entry.js'

/**
 * Resumable streams: a source that outlives its connection. The first request for a key, on
 * any instance sharing the bus, claims the key and runs the source into a record (a channel on
 * the bus, under a reserved name); every request for the key reads the record: replay after its
 * Last-Event-ID, then live, ending with the record.
 *
 * On the bus, for key K:
 * - `@resume-state:K`, set by `setState`: `running` while a source runs (a lease, renewed every
 *   LEASE_MS / 3, so that a record whose instance died is given up within LEASE_MS), then
 *   `ended`, kept `ttl` ms;
 * - `@resume:K`, the record: the events, each formatted once, then the end (an entry with an
 *   empty body);
 * - `@resume-cancel:K`, listened to by the instance running the source: `app.sse.cancel(K)` on
 *   any instance appends to it, and sets the state to `cancelled`, which the lease renewal also
 *   sees (so a cancel is never lost, at worst it waits lease / 3).
 */

/** The prefix of a record's channel name; channel names that start with it are reserved. */
export const RECORD_PREFIX = '@resume:'
const STATE_PREFIX = '@resume-state:'
const CANCEL_PREFIX = '@resume-cancel:'
const RUNNING = 'running'
const CANCELLED = 'cancelled'
const ENDED = 'ended'
/**
 * How long a running record is kept without its instance renewing it: if the process running
 * the source dies, the record and its key are given up within this, and readers end.
 */
export const LEASE_MS = 30_000
// A sync source never awaits, and memoryBus publishes within the call: the event loop gets a
// turn after this many events however the source behaves.
const YIELD_EVERY = 64

/** A control entry of a record: its end, or a request to stop its source. */
/**
 * What records need of a record's channel, a channel in record mode: it replays from the start
 * when a reader has no Last-Event-ID, ends its readers at the `end` control entry (after the
 * entries before it), and reports `cancel` entries instead of delivering them.
 */
export interface RecordChannel {
  /**
   * A reader's subscriber: replay after `position` (or, `fromStart`, from the record's first
   * entry), then live; `arrived` is called once the replay is written (see Channel).
   */
  [kAttachAt] (sink: StreamSink, filter: undefined, position: string | undefined, fromStart: boolean, arrived?: () => void): Promise<void>
  /**
   * Appends an entry (a frame without its id, as a channel's publish makes it, and its `json`)
   * or, with body `''`, the end; the bus keeps `history` entries.
   */
  append (body: string, json: string | undefined, history: number): Promise<string>
  /** Ends its readers on this instance and forgets it. */
  close (): void
}

/** How one record is made. */
export interface RecordSettings {
  /** The route's compiled schema.sse, if any. */
  format: EventFormatter | undefined
  /** How long the record is kept after its source ended, in ms. */
  ttl: number
  /** Events a record holds at most; the source is stopped beyond it. */
  maxEvents: number
  /** Bytes (UTF-16 code units of the formatted frames) a record holds at most. */
  maxBytes: number
  onInvalid: InvalidEventPolicy
}

export interface ResumableRecordsSettings {
  bus: Bus
  log: FastifyBaseLogger
  /** The lease of a running record, in ms (see LEASE_MS, the default). */
  lease?: number
  /** Makes the channel of a record on this instance (named `RECORD_PREFIX + key`). */
  channel: (name: string) => RecordChannel
}

/** `app.sse.resumable(key)`: the record of `key`, attached to, never started. */
export class ResumableRecord implements AttachableSource {
  readonly key: string
  readonly #records: ResumableRecords

  constructor (key: string, records: ResumableRecords) {
    this.key = key
    this.#records = records
  }

  /** Whether the record exists: running, or ended less than its `ttl` ago. */
  exists (): Promise<boolean> {
    return this.#records.exists(this.key)
  }

  [kAttach] (sink: StreamSink): Promise<void> {
    return this.#records.attach(this.key, sink)
  }
}

/** The resumable streams of one Fastify instance. */
export class ResumableRecords {
  readonly #settings: ResumableRecordsSettings
  /** Sources running on this instance, by key, with what aborts them. */
  readonly #running = new Map<string, { controller: AbortController, done: Promise<void> }>()
  /** Records' channels on this instance, with how many readers and sources hold each. */
  readonly #channels = new Map<string, { channel: RecordChannel, users: number }>()
  readonly #lease: number
  #closed = false

  constructor (settings: ResumableRecordsSettings) {
    this.#settings = settings
    this.#lease = settings.lease ?? LEASE_MS
  }

  /**
   * `reply.sse(source, { resume })`: claims `key` on the bus; the one request that gets the
   * claim (on any instance) starts `source`, which then runs to its end whoever is connected.
   * Resolves once this request may read the record (claimed, or another had it).
   */
  async start (key: string, source: unknown, record: RecordSettings, log: FastifyBaseLogger): Promise<void> {
    const bus = this.#bus()
    if (this.#closed) throw new ClosedError('fastify-conduit')
    const claimed = await bus.setState(STATE_PREFIX + key, RUNNING, this.#lease, true)
    if (!claimed || this.#closed) return
    let opened: OpenSource<unknown>
    const controller = new AbortController()
    try {
      opened = openSource<unknown>(source, () => ({ signal: controller.signal }))
    } catch (err) {
      // Not a source at all: nothing is recorded, and the key is free again at once.
      await bus.setState(STATE_PREFIX + key, ENDED, 1, false).catch(noop)
      throw err
    }
    const channel = this.#hold(key)
    const done = this.#produce(key, channel, opened, record, controller, log)
    this.#running.set(key, { controller, done })
    done.finally(() => {
      this.#running.delete(key)
      this.#release(key)
    }).catch(noop)
  }

  /** Whether `key`'s record exists (running, or ended within its ttl). */
  async exists (key: string): Promise<boolean> {
    return await this.#bus().getState(STATE_PREFIX + key) !== undefined
  }

  /**
   * Whether a reader after `lastEventId` has something to read: false when the record does not
   * exist, or when it ended and nothing but its end follows `lastEventId` (the reader read it
   * all: answering it a stream would make its EventSource reconnect, for ever).
   */
  async readable (key: string, lastEventId: string | undefined): Promise<boolean> {
    const bus = this.#bus()
    const state = await bus.getState(STATE_PREFIX + key)
    if (state === undefined) return false
    if (state !== ENDED || lastEventId === undefined) return true
    const { entries, complete } = await bus.replay(RECORD_PREFIX + key, lastEventId, 1)
    return !complete || (entries.length > 0 && entries[0].body !== '')
  }

  /** Streams `key`'s record to `sink`: replay after its Last-Event-ID, then live, until the end. */
  attach (key: string, sink: StreamSink): Promise<void> {
    // readable() found the record, but it may expire before the replay reads it (its entries
    // go with its state, `ttl` after its end): the replay then finds nothing, and no end would
    // ever come. Once the replay is written, a record gone ends the stream (its client is
    // answered 204 next).
    const arrived = (): void => {
      this.#bus().getState(STATE_PREFIX + key).then((state) => { if (state === undefined) sink.stop() }, noop)
    }
    const lastEventId = sink.lastEventId
    return this.#hold(key)[kAttachAt](sink, undefined, lastEventId, lastEventId === undefined, arrived).finally(() => this.#release(key))
  }

  /**
   * `app.sse.cancel(key)`: stops `key`'s source, wherever it runs (its signal aborts; the record
   * ends and is kept its ttl). Resolves true when a source was running, false otherwise.
   */
  async cancel (key: string): Promise<boolean> {
    const bus = this.#bus()
    const stateKey = STATE_PREFIX + key
    if (await bus.getState(stateKey) !== RUNNING) return false
    const running = this.#running.get(key)
    if (running !== undefined) {
      running.controller.abort()
      return true
    }
    // Within the lease (the source's instance renews it), so that a record whose instance died
    // is not kept alive by its cancellation.
    await bus.setState(stateKey, CANCELLED, this.#lease, false)
    await bus.publish(CANCEL_PREFIX + key, CANCELLED, 1)
    await bus.expire(CANCEL_PREFIX + key, this.#lease)
    return true
  }

  /** The server closes: every source running here is stopped, and its record ended. */
  async close (): Promise<void> {
    this.#closed = true
    const running = [...this.#running.values()]
    for (const { controller } of running) controller.abort()
    await Promise.all(running.map(({ done }) => done))
  }

  #hold (key: string): RecordChannel {
    let held = this.#channels.get(key)
    if (held === undefined) {
      held = { channel: this.#settings.channel(RECORD_PREFIX + key), users: 0 }
      this.#channels.set(key, held)
    }
    held.users++
    return held.channel
  }

  #release (key: string): void {
    const held = this.#channels.get(key) as { channel: RecordChannel, users: number }
    if (--held.users > 0) return
    this.#channels.delete(key)
    held.channel.close()
  }

  #bus (): Required<Pick<Bus, 'setState' | 'getState' | 'expire'>> & Bus {
    const bus = this.#settings.bus
    if (typeof bus.setState !== 'function' || typeof bus.getState !== 'function' || typeof bus.expire !== 'function') {
      throw new ResumeUnsupportedError()
    }
    return bus as Required<Pick<Bus, 'setState' | 'getState' | 'expire'>> & Bus
  }

  /**
   * Pulls the source into the record until it ends, throws, is cancelled or the server closes;
   * then appends the end, and keeps the record `ttl` ms.
   */
  async #produce (key: string, channel: RecordChannel, { iterator, sync }: OpenSource<unknown>, record: RecordSettings, controller: AbortController, log: FastifyBaseLogger): Promise<void> {
    const bus = this.#bus()
    const stateKey = STATE_PREFIX + key
    const channelName = RECORD_PREFIX + key
    const signal = controller.signal
    const lease = this.#lease
    const renew = async (): Promise<void> => {
      if (await bus.getState(stateKey) === CANCELLED) {
        controller.abort()
        return
      }
      await Promise.all([bus.setState(stateKey, RUNNING, lease, false), bus.expire(channelName, lease + record.ttl)])
    }
    const renewing = setInterval(() => {
      renew().catch((err: unknown) => { log.warn({ err, key }, 'fastify-conduit: renewing a resumable record failed') })
    }, lease / 3)
    renewing.unref()
    const cancelling = bus.listen(CANCEL_PREFIX + key, () => controller.abort())
    let done = false
    let events = 0
    let bytes = 0
    try {
      await Promise.all([cancelling.ready, bus.expire(channelName, lease + record.ttl)])
      while (!signal.aborted) {
        const step = sync ? (iterator as Iterator<unknown>).next() : await iterator.next()
        if (step.done === true) {
          done = true
          break
        }
        if (signal.aborted) break
        let body: string
        let json: string | undefined
        try {
          body = entryBody(step.value, record.format)
          json = entryJson(step.value, record.format)
        } catch (err) {
          const code = (err as { code?: string }).code
          // The record assigns ids (the bus's), as a channel does; say so in this one's terms.
          const reason = code === 'FST_ERR_CONDUIT_INVALID_ID' ? 'a resumable stream\'s record assigns ids itself; yield events without one' : (err as Error).message
          log.error({ code, reason, key },
            record.onInvalid === 'close'
              ? 'fastify-conduit: invalid event not recorded; the resumable stream ends (onInvalid: close)'
              : 'fastify-conduit: invalid event not recorded; skipped (onInvalid: skip)')
          if (record.onInvalid === 'close') break
          continue
        }
        if (++events > record.maxEvents || (bytes += body.length) > record.maxBytes) {
          log.error({ err: new RecordLimitError(key, record.maxEvents, record.maxBytes) }, 'fastify-conduit: resumable record is full; its source is stopped')
          break
        }
        await channel.append(body, json, record.maxEvents + 1)
        if (events % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve))
      }
    } catch (err) {
      if (!signal.aborted) log.error({ err, key }, 'fastify-conduit: the resumable source threw; its record ends')
    } finally {
      clearInterval(renewing)
      cancelling.stop()
      controller.abort()
      if (!done) await closeIterator(iterator, log)
      try {
        await channel.append('', undefined, record.maxEvents + 1)
        await Promise.all([bus.setState(stateKey, ENDED, record.ttl, false), bus.expire(channelName, record.ttl)])
      } catch (err) {
        log.error({ err, key }, 'fastify-conduit: ending a resumable record failed; it expires within its lease')
      }
    }
  }
}
