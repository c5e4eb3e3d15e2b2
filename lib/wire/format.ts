import { WireError } from './errors.js'
import { assertComment, assertEventName, assertId, assertMessage, assertRetry, describe } from './guards.js'
import type { SSEMessage } from './message.js'

// WHATWG HTML §9.2.6 "Interpreting an event stream": a line ends at CRLF, a lone LF or a lone
// CR. Every one of them must start a new `data:` line, or a payload could end its own line and
// write a field (`id: forged`) or a blank line (a second event) of its choosing.
const LINE_BREAK = /\r\n|\r|\n/

/** Field prefixes. A single space follows the colon: §9.2.6 strips exactly one. */
export const DATA = 'data: '
export const EVENT = 'event: '
export const ID = 'id: '
export const RETRY = 'retry: '
export const COMMENT = ': '

/**
 * Writes `text` as one or more lines of the field `prefix`, splitting on CRLF, LF and lone CR.
 * The common case (no line break) costs two `indexOf` scans and one concatenation.
 *
 * Every `data:` line goes through here, whatever produced the text: a string payload, or the
 * output of a serializer (JSON.stringify, a compiled fast-json-stringify). A serializer that
 * emits a raw line break (fast-json-stringify's `format: 'unsafe'` strings) then gets the same
 * treatment as a string payload: a new `data:` line, never the end of the event.
 */
export function fieldLines (prefix: string, text: string): string {
  if (text.indexOf('\n') === -1 && text.indexOf('\r') === -1) return prefix + text + '\n'
  return prefix + text.split(LINE_BREAK).join('\n' + prefix) + '\n'
}

/** The `event:` line, or an error when the name could end the line. */
export function eventField (event: unknown): string {
  assertEventName(event)
  return EVENT + event + '\n'
}

/** The `id:` line. Numbers must be finite; strings must not contain CR, LF or NUL. */
export function idField (id: unknown): string {
  assertId(id)
  return ID + id + '\n'
}

/** The `retry:` line. §9.2.6 only accepts ASCII digits, so a non-negative safe integer. */
export function retryField (retry: unknown): string {
  assertRetry(retry)
  return RETRY + retry + '\n'
}

/** Comment lines: like data, every line break starts a new `:` line. */
export function commentLines (comment: unknown): string {
  assertComment(comment)
  return fieldLines(COMMENT, comment)
}

/** JSON for data without a schema; a clear {@link WireError} instead of `undefined` or a TypeError. */
export function stringifyData (data: unknown): string {
  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (err) {
    throw new WireError('unserializable-data', 'data', (err as Error).message, { cause: err })
  }
  if (json === undefined) throw new WireError('unserializable-data', 'data', `JSON has no representation of ${describe(data)}`)
  return json
}

/**
 * The fields common to every frame, in the order comment, event?, id, retry, validated. The
 * caller appends the `data:` lines and the blank line that ends the frame.
 */
export function headFields (msg: SSEMessage): string {
  let head = ''
  if (msg.comment !== undefined) head += commentLines(msg.comment)
  if (msg.event !== undefined) head += eventField(msg.event)
  if (msg.id !== undefined) head += idField(msg.id)
  if (msg.retry !== undefined) head += retryField(msg.retry)
  return head
}

/**
 * Formats one message as an event-stream frame, exactly per WHATWG HTML §9.2.6.
 *
 * - `data` (a string verbatim, anything else as JSON) is split on CRLF, LF and lone CR into
 *   `data:` lines. A message with `data` (even `''`) or an `event` always writes a `data:`
 *   line, so an empty event still reaches EventSource listeners.
 * - A message with only `id`, `retry` and/or `comment` writes no `data:` line: it moves the
 *   client's Last-Event-ID (or retry) without dispatching an event.
 * - A bad `event`, `id`, `retry` or `comment` throws a {@link WireError} and nothing is returned.
 *
 * @example
 * formatEvent({ event: 'token', id: 1, data: { text: 'Hi' } })
 * // 'event: token\nid: 1\ndata: {"text":"Hi"}\n\n'
 */
export function formatEvent (msg: SSEMessage): string {
  assertMessage(msg)
  const head = headFields(msg)
  const data = msg.data
  if (data === undefined) {
    if (msg.event !== undefined) return head + DATA + '\n\n'
    if (head === '') throw new WireError('invalid-message', 'message', 'it has none of data, event, id, retry, comment')
    return head + '\n'
  }
  if (typeof data === 'string') return head + fieldLines(DATA, data) + '\n'
  // JSON.stringify escapes CR and LF, so this is one line; split anyway, so that the guarantee
  // does not rest on what a serializer promises.
  return head + fieldLines(DATA, stringifyData(data)) + '\n'
}
