import type { FastifyBaseLogger } from 'fastify'
import { DATA, EVENT, ID } from '../wire/format.js'
import { kFrame } from '../stream/sink.js'
import type { BusEntry } from './bus.js'

/**
 * The codec back: a bus entry is checked to be a frame a channel wrote, given its full frame
 * (for streams) and read back into a message (for `subscribe()` iterators).
 */

/** A bus entry known to be a channel frame, with its full frame, built once for every subscriber. */
export interface Entry extends BusEntry {
  readonly frame: string
}

/** The entry with its `id:` line: call only for a body that is a channel frame (see {@link isChannelFrame}). */
export function channelEntry (id: string, body: string, json: string | undefined): Entry {
  return { id, body, json, frame: ID + id + '\n' + body }
}

/**
 * Whether a bus entry's body is a frame a channel writes: an optional `event:` line, one or
 * more `data:` lines, the blank line, no CR. Anything else (written to the bus by something
 * other than a channel, or corrupted) is never streamed: it could end early and merge with the
 * next event, or carry an `id:` or `retry:` line of its own. A few `indexOf` scans per entry,
 * once per instance however many subscribers.
 */
export function isChannelFrame (body: string): boolean {
  if (body.indexOf('\r') !== -1) return false
  let line = body.startsWith(EVENT) ? body.indexOf('\n') + 1 : 0
  do {
    if (!body.startsWith(DATA, line)) return false
    line = body.indexOf('\n', line) + 1
    if (line === 0) return false
  } while (line < body.length - 1)
  return line === body.length - 1 && body.charCodeAt(line) === LF
}

/**
 * Reads a message back from an entry (its body a channel frame, see isChannelFrame): the
 * event name from the `event:` line, the data from the entry's `json` (string data) or else
 * from the data lines, which are then JSON. Data that is not JSON (written by something
 * else, or by a serializer that wrote a string unescaped) cannot be given back: logged and
 * skipped (undefined).
 */
export function decodeMessage<Message> (entry: Entry, channel: string, log: FastifyBaseLogger): Message | undefined {
  const { id, body } = entry
  let event = 'message'
  let start = 0
  if (body.startsWith(EVENT)) {
    start = body.indexOf('\n') + 1
    event = body.slice(EVENT.length, start - 1)
  }
  let json = entry.json
  if (json === undefined) {
    // The data lines joined as a client joins them; JSON is one line but for raw serializers.
    json = body.slice(start + DATA.length, -2)
    if (json.indexOf('\n') !== -1) json = json.split(DATA_LINE_BREAK).join('\n')
  }
  let data: unknown
  try {
    data = json === '' ? undefined : JSON.parse(json)
  } catch {
    log.warn({ channel, id }, 'fastify-conduit: a channel event\'s data is not JSON; subscribe() iterators skip it')
    return undefined
  }
  // Shared by every iterator and predicate of the batch: frozen, so that no subscriber can
  // change what the others get, and so that the frame stays its exact form (see kFrame).
  const message = { event, data, id }
  Object.defineProperty(message, kFrame, { value: entry.frame })
  return deepFreeze(message) as Message
}

/** Freezes a JSON value and everything in it (JSON has no cycles). */
function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null) {
    Object.freeze(value)
    for (const key in value) deepFreeze(value[key])
  }
  return value
}

const DATA_LINE_BREAK = '\n' + DATA
const LF = 0x0A
