import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { PRESENCE_PREFIX } from '../channel/bus.js'
import { noop } from '../channel/noop.js'
import { TrackedCounts } from '../channel/tracked-counts.js'

/**
 * Presence on Redis: how many subscribers each channel has on every instance. Each instance
 * publishes its own counts every `interval` into one hash per channel,
 * `<prefix>@presence:<channel>`, a field per instance holding `<count>:<deadline>`, the
 * deadline (Redis's clock, ms) 3 intervals ahead. A reader sums the fields whose deadline has
 * not passed: an instance that stops publishing (crashed, cut off) stops counting within 3
 * intervals, whatever the clocks of the instances. The key expires with its last field.
 */

/** How many intervals a published count stays valid. */
export const PRESENCE_INTERVALS = 3

// Redis's time in ms; scripts that read it then write need effects replication (Redis < 7).
const NOW = `
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`
// KEYS: the channels' hashes; ARGV: instance, validity (ms), then a count per key. Sets this
// instance's field (or removes it at 0), drops fields past their deadline, and keeps the key
// until the last valid field's deadline.
const PUBLISH = NOW + `
local valid = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[i + 2])
  if count > 0 then redis.call('HSET', key, ARGV[1], count .. ':' .. (now + valid)) else redis.call('HDEL', key, ARGV[1]) end
  local fields = redis.call('HGETALL', key)
  for f = 1, #fields, 2 do
    local value = fields[f + 1]
    if tonumber(string.sub(value, string.find(value, ':', 1, true) + 1)) <= now then redis.call('HDEL', key, fields[f]) end
  end
  if count > 0 and redis.call('PTTL', key) < valid then redis.call('PEXPIRE', key, valid) end
end
return 0
`
// KEYS: one channel's hash; ARGV: this instance (counted by the caller, exactly). The sum of
// the other instances' counts still valid.
const READ = NOW + `
local total = 0
local fields = redis.call('HGETALL', KEYS[1])
for f = 1, #fields, 2 do
  local value = fields[f + 1]
  local colon = string.find(value, ':', 1, true)
  if fields[f] ~= ARGV[1] and tonumber(string.sub(value, colon + 1)) > now then total = total + tonumber(string.sub(value, 1, colon - 1)) end
end
return total
`

/** Runs one command on the bus's command connection (see RedisStreamsBus#run). */
type Run = <T>(what: string, command: (client: Redis) => Promise<T>) => Promise<T>

/** One instance's presence: its tracked counts, published on a timer while any is tracked. */
export class Presence {
  /** This bus instance's field in every channel's hash. */
  readonly instance = randomUUID()
  readonly #prefix: string
  readonly #interval: number
  readonly #run: Run
  readonly #onError: (err: unknown) => void
  readonly #counts = new TrackedCounts()
  /** Channels whose field was published non-zero, so a count dropping to 0 is removed at once. */
  readonly #published = new Set<string>()
  #timer: NodeJS.Timeout | undefined
  #publishing: Promise<void> | undefined
  /** A publication was asked for while one ran: another follows it. */
  #again = false

  constructor (prefix: string, interval: number, run: Run, onError: (err: unknown) => void) {
    this.#prefix = prefix
    this.#interval = interval
    this.#run = run
    this.#onError = onError
  }

  track (channel: string, count: () => number): () => void {
    const untrack = this.#counts.track(channel, count)
    // Unref'd: presence never keeps the process alive. Published at once, so that other
    // instances see a new subscriber within a round trip rather than an interval.
    this.#timer ??= setInterval(this.#tick, this.#interval).unref()
    this.#tick()
    return untrack
  }

  /** Subscribers of `channel` on every instance: this one's exactly, the others' as published. */
  async subscribers (channel: string): Promise<number> {
    const others = await this.#run(`cannot count the subscribers of "${channel}"`, (command) =>
      command.eval(READ, 1, this.#key(channel), this.instance) as Promise<number>)
    return others + this.#counts.sum(channel)
  }

  /**
   * Stops publishing, and removes this instance's fields when `connected` (sent behind any
   * publication under way, on the same connection). Without a connection it does not wait for
   * one: the fields expire within 3 intervals anyway.
   */
  async close (connected: boolean): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#counts.clear()
    this.#again = false
    if (connected) await this.#publish().catch(noop)
  }

  readonly #tick = (): void => {
    // One publication at a time: a slow Redis does not pile them up.
    if (this.#publishing !== undefined) {
      this.#again = true
      return
    }
    this.#publishing = this.#publish().catch(this.#onError).finally(() => {
      this.#publishing = undefined
      if (!this.#again) return
      this.#again = false
      this.#tick()
    })
  }

  async #publish (): Promise<void> {
    const keys: string[] = []
    const counts: number[] = []
    for (const channel of this.#counts.channels()) {
      keys.push(this.#key(channel))
      counts.push(this.#counts.sum(channel))
    }
    for (const channel of this.#published) {
      if (this.#counts.has(channel)) continue
      keys.push(this.#key(channel))
      counts.push(0)
    }
    this.#published.clear()
    for (const channel of this.#counts.channels()) this.#published.add(channel)
    if (keys.length === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
      return
    }
    await this.#run('cannot publish subscriber counts', (command) =>
      command.eval(PUBLISH, keys.length, ...keys, this.instance, this.#interval * PRESENCE_INTERVALS, ...counts))
  }

  #key (channel: string): string {
    return this.#prefix + PRESENCE_PREFIX + channel
  }
}
