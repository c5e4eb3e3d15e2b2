import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import type { Redis } from 'ioredis'
import { InvalidOptionError } from '../errors.js'
import { compileOptions, History, HistoryTtl, Implements } from '../options.js'

export const RedisBusOptionsSchema = Type.Object({
  /**
   * Where Redis listens. The bus opens two connections: one for commands, one for the
   * blocking reads of every channel this instance listens to.
   * @default 'redis://127.0.0.1:6379' (when no `client` is given)
   */
  url: Type.Optional(Type.String({ minLength: 1, default: 'redis://127.0.0.1:6379', errorMessage: 'must be a redis:// URL' })),
  /**
   * An ioredis client to publish and replay with (its options are copied for the reading
   * connection). The bus never closes it: its owner does.
   * @default none: the bus connects to `url`
   */
  client: Type.Optional(Implements<Redis>(['duplicate'], {}, { errorMessage: 'must be an ioredis client' })),
  /**
   * Prepended to channel names to make stream keys, so several applications can share a Redis.
   * @default 'conduit:'
   */
  prefix: Type.Optional(Type.String({ default: 'conduit:', errorMessage: 'must be a string' })),
  /**
   * Events kept per channel (XADD MAXLEN ~), when the channel does not set its own `history`.
   * Redis trims by whole internal nodes, so a little more may be kept.
   * @default 1000
   */
  history: Type.Optional(History({ default: 1000 })),
  /**
   * Milliseconds a channel's stream key lives after its last publish (`PEXPIRE`, renewed by
   * every publish); `false` keeps keys for good. Per-room and per-user channels then leave no
   * keys behind; a Last-Event-ID from before the key expired reads as a gap.
   * @default 86400000 (24 hours)
   */
  ttl: Type.Optional(HistoryTtl({ default: 86_400_000 })),
  /**
   * Milliseconds between two publications of this instance's subscriber counts (presence, see
   * `channel.subscribers()`). Each count is valid for 3 intervals: an instance that stops
   * without closing (a crash) stops counting within 3 × this on every other instance, and
   * another instance's count is at most one interval (plus a round trip) old.
   * @default 5000
   */
  presenceInterval: Type.Optional(Type.Integer({ minimum: 10, maximum: 2 ** 31 - 1, default: 5000, errorMessage: 'must be an integer of milliseconds from 10 to 2^31 - 1' })),
  /**
   * Milliseconds a `publish()` may take, Redis outages included: within it, a publish waits for
   * Redis and retries (never storing an event twice); past it, it rejects with
   * `FST_ERR_CONDUIT_PUBLISH_TIMEOUT`, and the event is not stored, then or later (one
   * exception: a reply delayed after Redis stored in time; see the README, "Publishing during
   * an outage").
   * @default 5000
   */
  publishTimeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647, default: 5000, errorMessage: 'must be a positive integer of milliseconds (at most 2147483647)' }))
})
/** Options of {@link redisBus}. Give `url` or `client`, not both. */
export type RedisBusOptions = Static<typeof RedisBusOptionsSchema>

const checkOptions = compileOptions('redisBus options', RedisBusOptionsSchema)

/** The options of a redis bus, checked, with their defaults. */
export function resolveRedisBusOptions (options: unknown): Required<Omit<RedisBusOptions, 'client'>> & Pick<RedisBusOptions, 'client'> {
  const { url, client, prefix, history, ttl, presenceInterval, publishTimeout } = checkOptions(options)
  // The one rule that is a relation between options rather than a shape of one.
  if (url !== undefined && client !== undefined) throw new InvalidOptionError('url', 'cannot be given with client')
  // One XREAD over the keys of every channel fails with CROSSSLOT on a cluster: refused here
  // rather than failing at the first read (see the README, "Redis Cluster").
  if ((client as { isCluster?: unknown } | undefined)?.isCluster === true) {
    throw new InvalidOptionError('client', 'is a Redis Cluster client, which redisBus does not support: give it a client of one Redis server')
  }
  const defaults = RedisBusOptionsSchema.properties
  return {
    url: url ?? defaults.url.default,
    client,
    prefix: prefix ?? defaults.prefix.default,
    history: history ?? defaults.history.default,
    ttl: ttl ?? defaults.ttl.default,
    presenceInterval: presenceInterval ?? defaults.presenceInterval.default,
    publishTimeout: publishTimeout ?? defaults.publishTimeout.default
  }
}
