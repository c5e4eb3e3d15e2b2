/**
 * Presence counters (see `Bus.track`): per channel, the functions that count its subscribers
 * on this instance, one per Fastify instance's channel of that name. Shared by memoryBus and
 * redisBus.
 */
export class TrackedCounts {
  readonly #counts = new Map<string, Set<() => number>>()

  /** The channels tracked now. */
  channels (): IterableIterator<string> {
    return this.#counts.keys()
  }

  has (channel: string): boolean {
    return this.#counts.has(channel)
  }

  /** Adds a counter of `channel`; returns the function that removes it. */
  track (channel: string, count: () => number): () => void {
    let counts = this.#counts.get(channel)
    if (counts === undefined) {
      counts = new Set()
      this.#counts.set(channel, counts)
    }
    counts.add(count)
    const tracked = counts
    return () => {
      tracked.delete(count)
      if (tracked.size === 0 && this.#counts.get(channel) === tracked) this.#counts.delete(channel)
    }
  }

  /** What the counters of `channel` count now (0 for none). */
  sum (channel: string): number {
    let total = 0
    for (const count of this.#counts.get(channel) ?? []) total += count()
    return total
  }

  clear (): void {
    this.#counts.clear()
  }
}
