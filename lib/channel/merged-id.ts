import { STREAM_ID } from './bus.js'

/**
 * The Last-Event-ID of a stream that carries several channels (see merged.ts): one position per
 * channel, in the order the channels were given, behind a tag naming that list. Opaque to
 * clients; compact enough that 32 channels on redisBus or memoryBus stay well within the 1024
 * characters a server reads:
 *
 *   `<tag>.<position>.<position>…`
 *
 * - tag: FNV-1a (32 bits, base 36) of the channel names in order, so that an id made for
 *   another list (another route, channels reordered) is refused rather than misapplied;
 * - position: `<ms>-<seq>` stream ids (both buses, and the positions they give a channel with
 *   no entry: see Bus.last) in base 36, `-<seq>` left out when 0; any other bus's id as `~`
 *   and its base64url; empty for a channel that had no entry when the stream began on a bus
 *   that gives no position then (undefined from `last()`; so did redisBus before it gave
 *   one): it resumes from its first event, the bus's START: all of them, or what is retained
 *   after a `: gap` when some were dropped.
 */

/** A channel's position: after this id, or from the start of its history (undefined). */
export type Position = string | undefined

/** Between the tag and the positions (the composite id is the tag and every encoded position, joined by it). */
export const SEPARATOR = '.'
const OTHER = '~'

/** The tag of a list of channel names. */
export function mergeTag (names: readonly string[]): string {
  let hash = 0x811c9dc5
  for (const name of names) {
    for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193)
    // A separator no name-joining can forge: ['ab'] and ['a', 'b'] differ.
    hash = Math.imul(hash ^ 0xffff, 0x01000193)
  }
  return (hash >>> 0).toString(36)
}

/**
 * The positions in `id`, one per channel, or undefined when `id` is not one this list of
 * channels made (another tag or count, a malformed position, a single channel's id).
 */
export function decodeMergedId (id: string, tag: string, count: number): Position[] | undefined {
  const parts = id.split(SEPARATOR)
  if (parts.length !== count + 1 || parts[0] !== tag) return undefined
  const positions: Position[] = []
  for (let i = 1; i < parts.length; i++) {
    const position = decodePosition(parts[i])
    if (position === null) return undefined
    positions.push(position)
  }
  return positions
}

/** One position as the composite id holds it. */
export function encodePosition (position: Position): string {
  if (position === undefined) return ''
  const match = CANONICAL_STREAM_ID.exec(position)
  if (match === null) return OTHER + Buffer.from(position).toString('base64url')
  const ms = toBase36(match[1])
  return match[2] === '0' ? ms : ms + '-' + toBase36(match[2])
}

// Stream ids as Redis and memoryBus write them (no leading zeros), which base 36 gives back
// exactly; any other id, `01-0` included, is kept as it is.
const CANONICAL_STREAM_ID = /^(0|[1-9]\d{0,19})-(0|[1-9]\d{0,19})$/

/** Decimal digits in base 36: as a double while exact (ms timestamps, counters), else a BigInt. */
function toBase36 (digits: string): string {
  return digits.length <= 15 ? Number(digits).toString(36) : BigInt(digits).toString(36)
}

const BASE36_ID = /^([0-9a-z]{1,13})(?:-([0-9a-z]{1,13}))?$/
const BASE64URL = /^[A-Za-z0-9_-]+$/

/** A position, or null when `part` is malformed. */
function decodePosition (part: string): Position | null {
  if (part === '') return undefined
  if (part.startsWith(OTHER)) {
    const encoded = part.slice(1)
    return BASE64URL.test(encoded) ? Buffer.from(encoded, 'base64url').toString() : null
  }
  const match = BASE36_ID.exec(part)
  if (match === null) return null
  const id = fromBase36(match[1]) + '-' + (match[2] === undefined ? '0' : fromBase36(match[2]))
  // Within the range Redis issues (unsigned 64-bit parts), as STREAM_ID checks on the way in.
  return STREAM_ID.test(id) ? id : null
}

function fromBase36 (digits: string): string {
  let value = 0n
  for (const digit of digits) value = value * 36n + BigInt(parseInt(digit, 36))
  return value.toString()
}
