import { WireError } from './errors.js'
import type { SSEMessage } from './message.js'

// WHATWG HTML §9.2.6: a field value with CR or LF would end the line early; an `id` with NUL is
// ignored by the parser ("If the field value does not contain U+0000 NULL"), which silently
// breaks replay.
const BREAKS_LINE = /[\r\n]/
const BREAKS_ID = /[\0\r\n]/

/** Throws unless `msg` is a non-null object that is not an array. */
export function assertMessage (msg: unknown): asserts msg is SSEMessage {
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
    throw new WireError('invalid-message', 'message', `expected an object, got ${describe(msg)}`)
  }
}

/** Throws unless `event` is a string without CR or LF. */
export function assertEventName (event: unknown): asserts event is string {
  if (typeof event !== 'string') throw new WireError('invalid-event-name', 'event', `expected a string, got ${describe(event)}`)
  if (BREAKS_LINE.test(event)) throw new WireError('invalid-event-name', 'event', 'it contains CR or LF')
}

/**
 * Throws unless `id` is a string without CR, LF or NUL, or a finite number. The client checks
 * its `lastEventId` option with it too: what the server may not write, it may not send.
 */
export function assertId (id: unknown): asserts id is string | number {
  if (typeof id === 'string') {
    if (BREAKS_ID.test(id)) throw new WireError('invalid-id', 'id', 'it contains CR, LF or NUL')
    return
  }
  if (typeof id === 'number' && Number.isFinite(id)) return
  throw new WireError('invalid-id', 'id', `expected a string or a finite number, got ${describe(id)}`)
}

/** Throws unless `retry` is a non-negative safe integer: §9.2.6 only accepts ASCII digits. */
export function assertRetry (retry: unknown): asserts retry is number {
  if (typeof retry === 'number' && Number.isSafeInteger(retry) && retry >= 0) return
  throw new WireError('invalid-retry', 'retry', `expected a non-negative safe integer, got ${describe(retry)}`)
}

/** Throws unless `comment` is a string (its line breaks are split like data's). */
export function assertComment (comment: unknown): asserts comment is string {
  if (typeof comment !== 'string') throw new WireError('invalid-comment', 'comment', `expected a string, got ${describe(comment)}`)
}

/** A short description of a value for error messages; never the value itself (no payloads in logs). */
export function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value)
  return typeof value
}
