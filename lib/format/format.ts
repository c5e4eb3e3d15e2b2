import {
  InvalidCommentError,
  InvalidEventNameError,
  InvalidIdError,
  InvalidMessageError,
  InvalidRetryError,
  UnserializableDataError
} from '../errors.js'
import * as wire from '../wire/index.js'
import type { SSEMessage, WireErrorType } from '../wire/index.js'

// lib/wire throws its own WireError and knows nothing of @fastify/error; what fastify-conduit
// exports and runs (reply.sse, schema.sse, channels) throws the coded errors of lib/errors.ts.
// These are the wire's functions with that translation. A try/catch costs nothing while nothing
// is thrown (npm run bench, bench/wire-micro.mjs): the mapping runs on the failure path only.

const CODED: Record<WireErrorType, new (reason: string, options?: { cause: unknown }) => Error> = {
  'invalid-message': InvalidMessageError,
  'invalid-event-name': InvalidEventNameError,
  'invalid-id': InvalidIdError,
  'invalid-retry': InvalidRetryError,
  'invalid-comment': InvalidCommentError,
  'unserializable-data': UnserializableDataError
}

/** The coded error for a {@link wire.WireError}, with the same reason and cause. */
function coded (err: unknown): unknown {
  // Not the wire's (a getter of the message threw): passed on as it is.
  if (!(err instanceof wire.WireError)) return err
  const Coded = CODED[err.type]
  return err.cause === undefined ? new Coded(err.reason) : new Coded(err.reason, { cause: err.cause })
}

/**
 * Formats one message as an event-stream frame, exactly per WHATWG HTML §9.2.6.
 *
 * - `data` (a string verbatim, anything else as JSON) is split on CRLF, LF and lone CR into
 *   `data:` lines. A message with `data` (even `''`) or an `event` always writes a `data:`
 *   line, so an empty event still reaches EventSource listeners.
 * - A message with only `id`, `retry` and/or `comment` writes no `data:` line: it moves the
 *   client's Last-Event-ID (or retry) without dispatching an event.
 * - A bad `event`, `id`, `retry` or `comment` throws a coded error and nothing is returned.
 *
 * @example
 * formatEvent({ event: 'token', id: 1, data: { text: 'Hi' } })
 * // 'event: token\nid: 1\ndata: {"text":"Hi"}\n\n'
 */
export function formatEvent (msg: SSEMessage): string {
  try {
    return wire.formatEvent(msg)
  } catch (err) {
    throw coded(err)
  }
}

/** Throws `FST_ERR_CONDUIT_INVALID_MESSAGE` unless `msg` is a non-null object that is not an array. */
export function assertMessage (msg: unknown): asserts msg is SSEMessage {
  try {
    wire.assertMessage(msg)
  } catch (err) {
    throw coded(err)
  }
}

/** The fields common to every frame (comment, event?, id, retry), checked; see the wire's `headFields`. */
export function headFields (msg: SSEMessage): string {
  try {
    return wire.headFields(msg)
  } catch (err) {
    throw coded(err)
  }
}

/** JSON for data without a schema; `FST_ERR_CONDUIT_UNSERIALIZABLE_DATA` when it has none. */
export function stringifyData (data: unknown): string {
  try {
    return wire.stringifyData(data)
  } catch (err) {
    throw coded(err)
  }
}
