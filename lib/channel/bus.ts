/**
 * The transport behind channels. A channel formats and validates an event once, hands the
 * frame (without its `id:` line) to the bus, and gets back, on every instance sharing the bus,
 * the same frame with the id the bus assigned. The bus knows nothing of SSE, schemas or
 * sockets; `memoryBus()` and `redisBus()` are its two implementations.
 */

/** One event as the bus stores it: the id it assigned and the frame without its `id:` line. */
export interface BusEntry {
  /** Opaque, strictly increasing within a channel (compare with {@link Bus.compare}). */
  readonly id: string
  /** `event: …\ndata: …\n\n`, exactly as the publishing channel formatted it. */
  readonly body: string
  /**
   * The event's data as JSON, when the data lines of `body` are not that JSON: set when the
   * data was a string, which `body` holds verbatim (as `reply.sse` writes it) and so cannot
   * give back exactly (`'42'` reads as the number, `'a\r\nb'` as `'a\nb'`). Absent when the
   * data lines are the data's JSON (objects, numbers, every event of a channel with a schema).
   * A bus stores it with `body` and gives it back unchanged.
   */
  readonly json?: string | undefined
}

/** What the bus still holds after a Last-Event-ID. */
export interface BusReplay {
  /**
   * The entries after `afterId`, or the retained ones from the oldest when `complete` is false,
   * oldest first: `limit` of them when the call gave one, fewer only when no more are retained.
   */
  readonly entries: readonly BusEntry[]
  /**
   * True when `afterId` is within the retained history, so `entries` is exactly what came after
   * it. False when it is older than the history or unknown: events may have been missed. A bus
   * unsure of the answer says false (redisBus does at the exact trim boundary), never true.
   */
  readonly complete: boolean
}

/** Receives the live entries of one channel, in id order, each once (see {@link BusEntry}). */
export type BusListener = (id: string, body: string, json: string | undefined) => void

/** A live registration on one channel. */
export interface BusListening {
  /**
   * Resolves once the bus has fixed where live delivery starts: every entry published after
   * this resolved (and possibly some before) reaches the listener. A replay fetched after it
   * therefore overlaps live delivery instead of leaving a gap; the channel drops the overlap
   * by id. Rejects (with a coded error) when the bus cannot listen.
   */
  readonly ready: Promise<void>
  /** Stops delivery to this listener. */
  stop (): void
}

/** Something that logs like `fastify.log`; the bus reports connection trouble through it. */
export interface BusLogger {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}

/**
 * A channels' transport. Implement it to carry channels over something other than memory or
 * Redis; the plugin calls `ready()` in `onReady` and `close()` in `onClose`.
 */
export interface Bus {
  /** History kept per channel when the channel does not say. */
  readonly history: number
  /**
   * Connects (or checks the connection). Called by every Fastify instance using the bus;
   * rejects with a coded error when the transport cannot be reached.
   */
  ready (log?: BusLogger): Promise<void>
  /**
   * Appends `body` (with `json`, when given: see {@link BusEntry.json}) to `channel`, keeping
   * about `history` entries, and resolves to the id it assigned. Listeners on every instance
   * receive it.
   */
  publish (channel: string, body: string, history: number, json?: string): Promise<string>
  /**
   * Registers a live listener on `channel`. `onGap`, when given, is called when the bus finds
   * that live entries were lost before they reached the listener (redisBus: its reader fell
   * behind MAXLEN trimming during an outage); the channel then ends its live subscribers, who
   * resume through replay, which reports the gap.
   */
  listen (channel: string, listener: BusListener, onGap?: () => void): BusListening
  /**
   * What `channel` retains after `afterId` (see {@link BusReplay.complete}): at most `limit`
   * entries, and exactly `limit` unless fewer are retained. `afterId` `'0-0'` ({@link START})
   * asks for the channel from its first entry: `complete` only if none was ever dropped (a bus
   * that cannot tell says false, as for an unknown id). Channels read a long replay page
   * by page, each page after the last id of the one before, so that a resuming subscriber
   * never holds the whole history. A bus that ignores `limit` still works (channels then read
   * one page more, empty), without that bound.
   */
  replay (channel: string, afterId: string, limit?: number): Promise<BusReplay>
  /**
   * Optional. Resolves once every entry the bus held when it was called, on the channels this
   * instance listens to, has been handed to their listeners. The plugin calls it when the
   * server closes, before ending the streams, so that events whose `publish()` resolved are
   * delivered (within `closeGracePeriod`). A bus that delivers within `publish()`, as
   * memoryBus does, needs none.
   */
  flush? (): Promise<void>
  /**
   * Optional. The id of the newest entry of `channel` now, or undefined when it has none: a
   * replay after it is `complete` and holds exactly what is published later. For a channel
   * with no entry, a bus may instead give a position of its own, ordered before every later
   * entry, that its `replay()` understands (memoryBus and redisBus do: a history dropped whole
   * and begun anew after it then reads as a gap, which a replay from {@link START} cannot
   * tell). A stream of
   * several channels (`app.sse.merge()`) starts each channel there, so that a client that
   * drops before a channel's first event resumes it exactly; without it, such a client
   * resumes that channel from its oldest retained entry.
   */
  last? (channel: string): Promise<string | undefined>
  /**
   * Optional, with {@link subscribers}: presence. The channel `channel` of this instance has
   * `count()` subscribers now; the bus reads it when it needs to (redisBus: every
   * `presenceInterval`, to publish it to the other instances). Returns the function that stops
   * it counting. A channel tracks while it has subscribers.
   */
  track? (channel: string, count: () => number): () => void
  /**
   * Optional: how many subscribers `channel` has on every instance sharing the bus: the
   * tracked counts of this instance, exact, and the others' as they last published them.
   */
  subscribers? (channel: string): Promise<number>
  /** Orders two ids of one channel: negative, zero or positive like a sort comparator. */
  compare (a: string, b: string): number
  /**
   * Resumable streams' record state: sets `key` to `state` for `ttl` milliseconds. With
   * `create`, only when `key` is absent: a claim, which exactly one caller gets, on every
   * instance sharing the bus. Resolves whether it was set. Optional: a bus without
   * `setState`, `getState` and `expire` refuses resumable streams (`reply.sse(source, { resume })`).
   */
  setState? (key: string, state: string, ttl: number, create: boolean): Promise<boolean>
  /** The state `setState` left at `key`; undefined once absent or expired. */
  getState? (key: string): Promise<string | undefined>
  /**
   * Drops `channel`'s entries `ttl` milliseconds from now; each call moves the deadline. A
   * channel published to meanwhile keeps the deadline (memoryBus and Redis's PEXPIRE agree).
   */
  expire? (channel: string, ttl: number): Promise<void>
  /**
   * Releases what `ready()` acquired. A bus shared by several Fastify instances closes with the
   * last of them (one `close()` per `ready()`).
   */
  close (): Promise<void>
}

/**
 * Reserved at the start of channel names (the plugin refuses them): a bus may keep a
 * channel's presence under this prefix and the channel's name (redisBus does).
 */
export const PRESENCE_PREFIX = '@presence:'

/**
 * Reserved as a channel name (the plugin refuses it): a bus may keep under it what tells one
 * incarnation of its store from the next (redisBus does: see its `last()`).
 */
export const EPOCH_NAME = '@epoch'

/**
 * Before every id a bus issues: `replay(channel, START)` is the channel from its first entry,
 * `complete` when none of its entries was ever dropped (trimmed, expired). A stream of several
 * channels resumes there a channel that had no entry when it began; a record's reader without
 * a Last-Event-ID reads its record from there.
 */
export const START = '0-0'

/** `<milliseconds>-<sequence>`, the id form of Redis Streams, which memoryBus uses too. */
export const STREAM_ID = /^(\d{1,20})-(\d{1,20})$/

/**
 * Orders two stream ids. Digit strings are compared by length first, then as text, which is
 * numeric order for the unpadded decimal numbers Redis writes, at any size (sequence numbers
 * go up to 2^64, beyond what a double holds exactly).
 */
export function compareStreamIds (a: string, b: string): number {
  const dashA = a.indexOf('-')
  const dashB = b.indexOf('-')
  return compareDigits(a.slice(0, dashA), b.slice(0, dashB)) ||
    compareDigits(a.slice(dashA + 1), b.slice(dashB + 1))
}

function compareDigits (a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length
  return a < b ? -1 : a > b ? 1 : 0
}
