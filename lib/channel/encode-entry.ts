import { InvalidIdError, InvalidMessageError } from '../errors.js'
import type { EventFormatter } from '../schema/compile.js'
import { assertMessage, formatEvent } from '../format/format.js'
import type { SSEMessage } from '../wire/message.js'

/**
 * The publish codec: a published message becomes a bus entry, the frame without its `id:` line
 * (the bus assigns the id) and, for string data, the string as JSON beside it.
 */

/**
 * The frame without its `id:` line: what goes on the bus. A message with an `id`, `retry` or
 * `comment`, or with neither event nor data, is refused with a coded error.
 */
export function entryBody (message: unknown, format: EventFormatter | undefined): string {
  assertMessage(message)
  if (message.id !== undefined) throw new InvalidIdError('a channel assigns ids itself; publish without one')
  if (message.retry !== undefined || message.comment !== undefined) {
    throw new InvalidMessageError('a channel carries events: only event and data')
  }
  if (message.event === undefined && message.data === undefined) {
    throw new InvalidMessageError('it has neither event nor data')
  }
  if (format !== undefined) return format(message)
  // Exactly what reply.sse writes for the same message (which has no id, retry or comment,
  // checked above): a string verbatim, anything else JSON.
  return formatEvent(message)
}

/**
 * The kind of value the entry carries, when its data lines cannot tell it: without a schema a
 * string is written verbatim, as reply.sse writes it, and its data lines cannot give it back
 * exactly (the string '42' would read as a number, CRLF as LF). So the string goes on the bus
 * beside the frame, as JSON (which survives any store, lone surrogates included). The wire
 * carries no marker: clients see what reply.sse sends. Call after {@link entryBody} accepted
 * the message.
 */
export function entryJson (message: unknown, format: EventFormatter | undefined): string | undefined {
  const data = (message as SSEMessage).data
  return format === undefined && typeof data === 'string' ? JSON.stringify(data) : undefined
}
