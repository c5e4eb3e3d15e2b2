import type { Bus, BusEntry, BusListening } from './bus.js'
import { channelEntry, isChannelFrame } from './decode-entry.js'
import type { Entry } from './decode-entry.js'

/**
 * Events read from the bus per replay request. A resuming subscriber holds one page at a time
 * (and its stream's or iterator's own buffers): N clients resuming at once after a deploy hold
 * N pages, not N histories.
 */
export const REPLAY_PAGE = 100

/**
 * A subscriber of either kind (a stream's sink, or a `subscribe()` iterator), on its way
 * through the channel: joining (waiting for the bus and the replay, holding live entries),
 * settling (caught up, skipping live entries its replay already held), then live.
 */
export interface Receiver {
  /** True once it is gone (client left, iterator returned, dropped, channel closed). */
  left: boolean
  /** Live entries delivered while it was joining. */
  pending: Entry[]
  pendingBytes: number
  /** Set when live entries held while it read a page of replay passed `maxBufferedBytes` and were let go. */
  overflowed: boolean
  /** While settling: the last id it was given; live entries up to it are skipped. */
  after: string | undefined
  /** Writes entries one by one (the end of a replay, catch-up): the per-subscriber path. */
  write (entries: readonly Entry[], gap: boolean): void
  /** Writes a page of replay, paced by the subscriber's reading; resolves when it may have more. */
  replay (entries: readonly Entry[], gap: boolean): Promise<void>
  /** Whether it can take `entries` at once, within its bound (else they are written paced). */
  fits (entries: readonly Entry[]): boolean
  /** Joins the shared live path. */
  live (): void
  /** Ends it because the channel closes. */
  close (): void
  /** Ends it because it fell more than `maxBufferedBytes` behind. */
  drop (): void
}

/** What the seam needs of the channel around it. */
export interface SeamHost {
  /** The channel's listening on the bus, started by the first subscriber. */
  listen (): BusListening
  /** Stops listening on the bus if nobody subscribes any more. */
  release (): void
  /** Hands the live entries not yet flushed to the other subscribers now, and returns them. */
  flush (): readonly Entry[]
  /** Reports a bus entry that is not a channel frame (skipped). */
  malformed (id: string): void
  /** A record's channel (see resume/records.ts): its end entry (empty body) is kept, not skipped. */
  readonly record: boolean
}

/**
 * The seam between replay and live: a subscriber joins (the bus listens, the replay after its
 * Last-Event-ID is read page by page, each page written as the subscriber reads), gets the
 * last page and the live entries held meanwhile, then settles by id into the shared live
 * path, with no gap and no duplicate.
 */
export class ReplaySeam {
  readonly #bus: Bus
  readonly #channel: string
  readonly #maxBufferedBytes: number
  readonly #host: SeamHost
  readonly #joining = new Set<Receiver>()
  /** Those of the joining that read a replay: the bus holds what they let go. */
  readonly #replaying = new Set<Receiver>()
  readonly #settling = new Set<Receiver>()

  constructor (bus: Bus, channel: string, maxBufferedBytes: number, host: SeamHost) {
    this.#bus = bus
    this.#channel = channel
    this.#maxBufferedBytes = maxBufferedBytes
    this.#host = host
  }

  /** Receivers joining or settling: not yet on the shared live path. */
  get size (): number {
    return this.#joining.size + this.#settling.size
  }

  /**
   * Registers `receiver`, waits for the bus to listen, reads the replay after `lastEventId`
   * (if any) page by page, then lets it arrive, in the same synchronous step as the last
   * await: nothing (a flush, a close) can come between the end of its joining and its arrival.
   * `started` is called once the bus listens and the first page (which tells whether there is
   * a gap) is in: from then on nothing published is missed.
   */
  async join (receiver: Receiver, lastEventId: string | undefined, started?: () => void): Promise<void> {
    this.#joining.add(receiver)
    try {
      await this.#host.listen().ready
      if (receiver.left) return
      if (lastEventId === undefined) {
        this.#joining.delete(receiver)
        started?.()
        this.#arrive(receiver, [], undefined, false, false)
        return
      }
      this.#replaying.add(receiver)
      await this.#replay(receiver, lastEventId, started)
    } finally {
      this.#joining.delete(receiver)
      this.#replaying.delete(receiver)
      if (receiver.left) this.#host.release()
    }
  }

  /** Forgets a receiver that left while settling. */
  leave (receiver: Receiver): void {
    this.#settling.delete(receiver)
  }

  /**
   * A live batch reached the channel: receivers still joining hold it. Past
   * `maxBufferedBytes`, one reading a replay lets what it held go (the bus still has it: it
   * reads another page) and one that is not is dropped (the slow-subscriber policy before it
   * is live).
   */
  hold (entries: readonly Entry[], size: number): void {
    for (const receiver of this.#joining) {
      receiver.pendingBytes += size
      if (receiver.pendingBytes > this.#maxBufferedBytes) {
        if (this.#replaying.has(receiver)) {
          receiver.overflowed = true
          receiver.pending = []
        } else {
          receiver.drop()
        }
        continue
      }
      for (const entry of entries) receiver.pending.push(entry)
    }
  }

  /**
   * Settling receivers get the entries of a live batch past their last id, then join the
   * shared path. Called after the batch went down the shared paths, so that a receiver
   * settling now does not get it twice.
   */
  settle (entries: readonly Entry[]): void {
    if (this.#settling.size === 0) return
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

  /** Ends every receiver not yet live: the channel closes. */
  close (): void {
    for (const receiver of this.#joining) receiver.close()
    for (const receiver of this.#settling) receiver.close()
  }

  /**
   * The replay, one page of REPLAY_PAGE at a time, each written as the receiver reads it.
   * Live entries are held only while a page is read (held from before the request, so nothing
   * published after it is missed); a full page, or one during which the held entries passed
   * the bound, or one the receiver cannot take at once, is followed by another, read after its
   * last id. The first short page it can take is the last: the receiver arrives. A page after the first that is not `complete` means the
   * history was trimmed past this receiver while it read: it fell behind and is dropped (it
   * resumes with its Last-Event-ID, and learns of the gap then).
   */
  async #replay (receiver: Receiver, lastEventId: string, started: (() => void) | undefined): Promise<void> {
    let given: string | undefined
    let gap = false
    for (;;) {
      receiver.pending = []
      receiver.pendingBytes = 0
      receiver.overflowed = false
      const page = await this.#bus.replay(this.#channel, given ?? lastEventId, REPLAY_PAGE)
      if (receiver.left) return
      let newGap = false
      if (!page.complete) {
        if (given !== undefined) {
          receiver.drop()
          return
        }
        newGap = !gap
        gap = true
      }
      if (started !== undefined) {
        started()
        started = undefined
      }
      const raw = page.entries
      const entries = this.#valid(raw)
      if (raw.length < REPLAY_PAGE && !receiver.overflowed && receiver.fits(entries)) {
        this.#joining.delete(receiver)
        const last = raw.length > 0 ? raw[raw.length - 1].id : given ?? (page.complete ? lastEventId : undefined)
        this.#arrive(receiver, entries, last, newGap, true)
        return
      }
      // More to read: what was held is in the next page.
      receiver.pending = []
      receiver.pendingBytes = 0
      await receiver.replay(entries, newGap)
      if (receiver.left) return
      // Read on after the last of this page (an empty one, read while the held entries
      // overflowed, leaves it where it was).
      for (const { id } of raw) given = id
    }
  }

  #valid (raw: readonly BusEntry[]): Entry[] {
    const entries: Entry[] = []
    for (const { id, body, json } of raw) {
      if (isChannelFrame(body) || (body === '' && this.#host.record)) entries.push(channelEntry(id, body, json))
      else this.#host.malformed(id)
    }
    return entries
  }

  /**
   * The seam itself. The bus started live delivery before the last page was read, so the two
   * overlap and never leave a gap; ids drop the overlap, in two places:
   *
   * - now: the last page, then the live entries held while it was read (and those not yet
   *   flushed, which are flushed to the others at once) that it did not already hold;
   * - then, while settling: a replay may run ahead of live delivery (Redis reads the two on
   *   different connections), so live entries up to the last id given are skipped, until the
   *   first newer one, when the receiver joins the shared path.
   *
   * `last` is the last id the replay stands for (undefined without a replay, or when a gap
   * left nothing to stand on). Without a replay everything came live, in order: no settling.
   */
  #arrive (receiver: Receiver, replayed: Entry[], last: string | undefined, gap: boolean, replay: boolean): void {
    const entries = replayed
    // This receiver is in no set now: the flush reaches only the others.
    const unflushed = this.#host.flush()
    for (const held of [receiver.pending, unflushed]) {
      for (const entry of held) {
        if (last === undefined || this.#bus.compare(entry.id, last) > 0) entries.push(entry)
      }
    }
    receiver.pending = []
    receiver.write(entries, gap)
    if (receiver.left) return
    const after = entries.length > 0 ? entries[entries.length - 1].id : last
    if (!replay || after === undefined) {
      receiver.live()
    } else {
      receiver.after = after
      this.#settling.add(receiver)
    }
  }
}
