import type { Bus, BusListening, BusReplay } from './bus.js'
import { channelEntry, isChannelFrame } from './decode-entry.js'
import type { Entry } from './decode-entry.js'

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
}

/**
 * The seam between replay and live: a subscriber joins (the bus listens, the replay after its
 * Last-Event-ID is read), gets the replay and the live entries held meanwhile, then settles by
 * id into the shared live path, with no gap and no duplicate.
 */
export class ReplaySeam {
  readonly #bus: Bus
  readonly #channel: string
  readonly #maxBufferedBytes: number
  readonly #host: SeamHost
  readonly #joining = new Set<Receiver>()
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
   * Registers `receiver`, waits for the bus to listen and for the replay (if any), then lets
   * it arrive, in the same synchronous step as the last await: nothing (a flush, a close) can
   * come between the end of its joining and its arrival.
   */
  async join (receiver: Receiver, lastEventId: string | undefined): Promise<void> {
    this.#joining.add(receiver)
    try {
      await this.#host.listen().ready
      const replay = lastEventId === undefined || receiver.left ? undefined : await this.#bus.replay(this.#channel, lastEventId)
      this.#joining.delete(receiver)
      if (!receiver.left) this.#arrive(receiver, lastEventId, replay)
    } finally {
      this.#joining.delete(receiver)
      if (receiver.left) this.#host.release()
    }
  }

  /** Forgets a receiver that left while settling. */
  leave (receiver: Receiver): void {
    this.#settling.delete(receiver)
  }

  /**
   * A live batch reached the channel: receivers still joining hold it, unless it takes them
   * past `maxBufferedBytes`, when they are dropped (the slow-subscriber policy before they
   * are live).
   */
  hold (entries: readonly Entry[], size: number): void {
    for (const receiver of this.#joining) {
      receiver.pendingBytes += size
      if (receiver.pendingBytes > this.#maxBufferedBytes) {
        receiver.drop()
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
   * The seam itself. The bus started live delivery before the replay was read, so the two
   * overlap and never leave a gap; ids drop the overlap, in two places:
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
        if (isChannelFrame(body)) entries.push(channelEntry(id, body, json))
        else this.#host.malformed(id)
      }
      const replayed = replay.entries.length
      last = replayed > 0 ? replay.entries[replayed - 1].id : replay.complete ? lastEventId : undefined
    }
    // This receiver is in no set now: the flush reaches only the others.
    const unflushed = this.#host.flush()
    for (const held of [receiver.pending, unflushed]) {
      for (const entry of held) {
        if (last === undefined || this.#bus.compare(entry.id, last) > 0) entries.push(entry)
      }
    }
    receiver.pending = []
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
}
