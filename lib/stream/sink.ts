import type { FastifyBaseLogger } from 'fastify'
import type { SourceContext } from './source.js'

/**
 * Attaches a push-based source (a channel) to a stream: `reply.sse(source)` calls
 * `source[kAttach](sink, context)` instead of pulling an iterator, so a broadcast reaches every
 * subscriber with no per-subscriber promise or iterator step.
 */
export const kAttach = Symbol.for('fastify-conduit.attach')

/**
 * On a message a channel decoded for its `subscribe()` iterators and `where()` predicates (a
 * non-enumerable property, so a copy such as `{ ...message }` does not carry it): the frame the
 * channel wrote for it. Such a message is frozen, data and all, so the frame stays its exact
 * form: a stream without `schema.sse` that gets it back from a generator writes that frame
 * instead of serializing the message again, once per subscriber.
 */
export const kFrame = Symbol('fastify-conduit.frame')

/** A message carrying its frame; see {@link kFrame}. */
export interface FramedMessage {
  readonly [kFrame]?: string
}

/** The side of one open stream that a push-based source writes to. */
export interface StreamSink {
  /** What a source function would receive: the abort signal and Last-Event-ID. */
  readonly context: SourceContext
  /** The request's Last-Event-ID, without making a signal. */
  readonly lastEventId: string | undefined
  /** The request's logger (its lines carry the request id). */
  readonly log: FastifyBaseLogger
  /** Calls `listener` once when the stream ends, whatever ends it (at once if it has). One listener. */
  onEnd (listener: () => void): void
  /** True once the stream has ended. */
  readonly ended: boolean
  /** Characters and bytes queued in this stream and not yet taken by the socket. */
  readonly queued: number
  /** False while the stream is backed up (its socket is not taking more). */
  readonly writable: boolean
  /** Resolves once the stream is no longer backed up, or has ended. */
  drained (): Promise<void>
  /** Writes one formatted frame; false when the stream is backed up or ended. */
  writeFrame (frame: string): boolean
  /** Writes bytes shared with other streams (never copied); false when backed up or ended. */
  writeBytes (bytes: Uint8Array): boolean
  /** Ends the stream cleanly once what is queued has been written. */
  stop (): void
  /** Drops the connection now, queued bytes and all (a subscriber too slow to keep). */
  abort (): void
}

/** A source that pushes to a sink; resolves when it stops writing to it. */
export interface AttachableSource {
  [kAttach] (sink: StreamSink): Promise<void>
}

export function isAttachable (source: unknown): source is AttachableSource {
  return typeof source === 'object' && source !== null && typeof (source as AttachableSource)[kAttach] === 'function'
}
