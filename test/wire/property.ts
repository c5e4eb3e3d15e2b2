import type { Test } from 'tap'
import { createParser } from 'eventsource-parser'
import type { EventSourceMessage } from 'eventsource-parser'

// What the property tests share: a seeded PRNG, strings made of the pieces that break naive
// formatters, and an independent parser (eventsource-parser) to read what was written.

/** A small seeded PRNG (mulberry32), so a failure names a seed that reproduces it. */
export function random (seed: number): () => number {
  return () => {
    seed |= 0
    seed = seed + 0x6D2B79F5 | 0
    let x = Math.imul(seed ^ seed >>> 15, 1 | seed)
    x = x + Math.imul(x ^ x >>> 7, 61 | x) ^ x
    return ((x ^ x >>> 14) >>> 0) / 4294967296
  }
}

/** Line breaks of every kind, NUL, field-like text, BOM, U+2028, lone surrogates, multibyte. */
export const PIECES = ['\n', '\r', '\r\n', '\0', ' ', ':', 'data: ', 'id:', '\n\nevent: forged\n', '"', '\\', 'é', '€', '😀', '\uD800', '\uDFFF', '\uFEFF', 'a', 'Zz', '\u2028', '\u2029', '\t']

export function randomString (next: () => number, max: number): string {
  let s = ''
  const length = Math.floor(next() * max)
  for (let i = 0; i < length; i++) {
    s += next() < 0.7 ? PIECES[Math.floor(next() * PIECES.length)] : String.fromCharCode(Math.floor(next() * 0x3000))
  }
  return s
}

/** An event name a formatter accepts: random, but without CR or LF (those are rejected). */
export function randomName (next: () => number, max: number): string {
  return randomString(next, max).replace(/[\r\n]/g, '')
}

/** A random JSON-able value: strings from {@link randomString} at every depth. */
export function randomValue (next: () => number, depth = 0): unknown {
  const pick = next()
  if (pick < 0.35 || depth > 2) return randomString(next, 30)
  if (pick < 0.45) return Math.floor(next() * 2000) - 1000
  if (pick < 0.5) return next() < 0.5 ? null : next() < 0.5
  if (pick < 0.75) return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth + 1))
  const object: Record<string, unknown> = {}
  for (let i = Math.floor(next() * 4); i > 0; i--) object[randomString(next, 6)] = randomValue(next, depth + 1)
  return object
}

/** Parses an event stream fed as UTF-8 bytes in random chunks, as a socket would deliver it. */
export function parseAll (bytes: Buffer, next: () => number): EventSourceMessage[] {
  const events: EventSourceMessage[] = []
  const parser = createParser({ onEvent: (event) => events.push(event) })
  const decoder = new TextDecoder()
  let offset = 0
  while (offset < bytes.length) {
    const size = 1 + Math.floor(next() * 64)
    parser.feed(decoder.decode(bytes.subarray(offset, offset + size), { stream: true }))
    offset += size
  }
  parser.feed(decoder.decode())
  return events
}

/**
 * What a client can see of a string: a UTF-8 stream has no lone surrogates (they arrive as
 * U+FFFD), and every line break inside data arrives as LF.
 */
export const wellFormed = (s: string): string => s.toWellFormed().replace(/\r\n|\r/g, '\n')

/** The JSON a client parses back from `value`'s JSON (lone surrogates are escaped in JSON). */
export const jsonRoundTrip = (value: unknown): unknown => JSON.parse(JSON.stringify(value))

/** An event as the tests compare them: name (undefined for `message`), id and data. */
export interface Expected {
  event: string | undefined
  id: string | undefined
  /** The data text, or a check of it (for JSON, compared as parsed values). */
  data: string | ((data: string) => boolean)
}

/**
 * The index of the first event that differs from what was expected (comparing counts too),
 * or -1 when exactly the expected events came out.
 */
export function firstMismatch (expected: Expected[], received: EventSourceMessage[]): number {
  const length = Math.max(expected.length, received.length)
  for (let i = 0; i < length; i++) {
    const want = expected[i]
    const got = received[i]
    if (want === undefined || got === undefined) return i
    if (got.event !== want.event || got.id !== want.id) return i
    if (typeof want.data === 'string' ? got.data !== want.data : !want.data(got.data)) return i
  }
  return -1
}

/** A check that `data` is JSON whose value equals `value` as JSON round-trips it. */
export function sameJson (value: unknown): (data: string) => boolean {
  const want = JSON.stringify(jsonRoundTrip(value))
  return (data) => {
    try {
      return JSON.stringify(JSON.parse(data)) === want
    } catch {
      return false
    }
  }
}

/**
 * Property rounds over `seeds` seeds: `round` writes a wire of random messages and says what a
 * client must parse out of it; the wire is parsed with eventsource-parser (in random chunks)
 * and the first difference fails the test.
 */
export function checkRounds (t: Test, seeds: number, round: (next: () => number) => { wire: string, expected: Expected[] }): void {
  for (let seed = 1; seed <= seeds; seed++) {
    const next = random(seed)
    const { wire, expected } = round(next)
    const received = parseAll(Buffer.from(wire, 'utf8'), next)
    const mismatch = firstMismatch(expected, received)
    if (mismatch !== -1) {
      t.fail(`seed ${seed}: first difference at event ${mismatch}`, { found: received[mismatch], wanted: expected[mismatch] })
      return
    }
  }
  t.pass(`${seeds} seeds`)
}
