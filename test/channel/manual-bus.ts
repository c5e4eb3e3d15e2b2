import { compareStreamIds } from '../../lib/channel/bus.js'
import type { Bus, BusEntry, BusListener, BusListening, BusReplay } from '../../lib/index.js'

/**
 * A bus the test drives by hand: publish stores, and live delivery happens only when the test
 * calls deliver(), so a replay can be made to run ahead of live delivery (as it can on Redis),
 * or to wait (`holdReplays`) while live entries arrive.
 */
export class ManualBus implements Bus {
  readonly history = 1000
  readonly entries = new Map<string, BusEntry[]>()
  readonly #listeners = new Map<string, Set<BusListener>>()
  readonly #delivered = new Map<string, number>()
  #seq = 0
  #held: Array<() => void> | undefined
  #heldListening: Array<() => void> | undefined
  failListen: Error | undefined
  failReplay: Error | undefined
  failReady: Error | undefined
  readyCalls = 0
  closeCalls = 0

  async ready (): Promise<void> {
    this.readyCalls++
    if (this.failReady !== undefined) throw this.failReady
  }

  async close (): Promise<void> {
    this.closeCalls++
  }

  async publish (channel: string, body: string, history: number, json?: string): Promise<string> {
    const id = `1-${++this.#seq}`
    this.#log(channel).push({ id, body, json })
    return id
  }

  /** Delivers every entry of `channel` not yet delivered to its live listeners. */
  deliver (channel: string): void {
    const log = this.#log(channel)
    const from = this.#delivered.get(channel) ?? 0
    this.#delivered.set(channel, log.length)
    for (const { id, body, json } of log.slice(from)) {
      for (const listener of this.#listeners.get(channel) ?? []) listener(id, body, json)
    }
  }

  listeners (channel: string): number {
    return this.#listeners.get(channel)?.size ?? 0
  }

  listen (channel: string, listener: BusListener): BusListening {
    if (this.failListen !== undefined) return { ready: Promise.reject(this.failListen), stop: () => {} }
    let listeners = this.#listeners.get(channel)
    if (listeners === undefined) {
      listeners = new Set()
      this.#listeners.set(channel, listeners)
    }
    listeners.add(listener)
    const set = listeners
    const held = this.#heldListening
    const ready = held === undefined ? Promise.resolve() : new Promise<void>((resolve) => held.push(resolve))
    return { ready, stop: () => { set.delete(listener) } }
  }

  /** New listenings are not ready until releaseListening() (live entries still reach them). */
  holdListening (): void {
    this.#heldListening = []
  }

  releaseListening (): void {
    const held = this.#heldListening ?? []
    this.#heldListening = undefined
    for (const release of held) release()
  }

  /** Replays wait until releaseReplays(). */
  holdReplays (): void {
    this.#held = []
  }

  releaseReplays (): void {
    const held = this.#held ?? []
    this.#held = undefined
    for (const release of held) release()
  }

  async replay (channel: string, afterId: string, limit = Infinity): Promise<BusReplay> {
    if (this.#held !== undefined) await new Promise<void>((resolve) => this.#held?.push(resolve))
    if (this.failReplay !== undefined) throw this.failReplay
    const log = this.#log(channel)
    const at = log.findIndex((entry) => entry.id === afterId)
    return at === -1 ? { entries: log.slice(0, limit), complete: false } : { entries: log.slice(at + 1, at + 1 + limit), complete: true }
  }

  compare (a: string, b: string): number {
    return compareStreamIds(a, b)
  }

  #log (channel: string): BusEntry[] {
    let log = this.entries.get(channel)
    if (log === undefined) {
      log = []
      this.entries.set(channel, log)
    }
    return log
  }
}

/** One turn of the event loop: channels flush what arrived in a turn with setImmediate. */
export function nextTurn (): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
