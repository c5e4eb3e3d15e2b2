/**
 * What the wire refuses, one string per rule. The wire knows nothing of Fastify or of the
 * client: each side maps these to its own coded errors (the server to `FST_ERR_CONDUIT_*`, the
 * client to `FST_ERR_CONDUIT_CLIENT_*`).
 */
export type WireErrorType =
  | 'invalid-message'
  | 'invalid-event-name'
  | 'invalid-id'
  | 'invalid-retry'
  | 'invalid-comment'
  | 'unserializable-data'

/** The message field a {@link WireError} is about; `message` for the message as a whole. */
export type WireField = 'message' | 'event' | 'id' | 'retry' | 'comment' | 'data'

/**
 * A message or field the wire refuses to write. It carries the rule it breaks (`type`), the
 * offending `field` and a `reason` that describes the value without quoting it (no payloads in
 * logs).
 */
export class WireError extends Error {
  readonly type: WireErrorType
  readonly field: WireField
  /** Why, such as `it contains CR or LF`. */
  readonly reason: string

  constructor (type: WireErrorType, field: WireField, reason: string, options?: { cause?: unknown }) {
    super(`invalid ${field}: ${reason}`, options)
    this.name = 'WireError'
    this.type = type
    this.field = field
    this.reason = reason
  }
}
