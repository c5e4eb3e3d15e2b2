import fc from 'fast-check'
import t from 'tap'
import { decodeMergedId, encodePosition, mergeTag, SEPARATOR } from '../../lib/channel/merged-id.js'

// The composite Last-Event-ID of a merged stream: what is encoded decodes to the same positions.
const streamId = fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }))
  .map(([ms, seq]) => `${ms}-${seq}`)
const position = fc.oneof(streamId, fc.string({ minLength: 1, maxLength: 40 }), fc.constant(undefined))

t.test('property: positions of any form round-trip, under their tag', (t) => {
  fc.assert(fc.property(fc.array(fc.string({ minLength: 1 }), { minLength: 1, maxLength: 32 }), fc.array(position, { minLength: 32, maxLength: 32 }), (names, all) => {
    const positions = all.slice(0, names.length)
    const tag = mergeTag(names)
    const id = [tag, ...positions.map(encodePosition)].join(SEPARATOR)
    t.same(decodeMergedId(id, tag, names.length), positions)
  }), { numRuns: 300 })
  t.end()
})

t.test('32 channels stay well within 1024 characters, at the longest positions the two buses give', (t) => {
  const names = Array.from({ length: 32 }, (_, i) => `channel-${i}`)
  const idOf = (position: string): string => [mergeTag(names), ...names.map(() => encodePosition(position))].join(SEPARATOR)
  // redisBus, a channel with no entry: 0-<T·2^23 + E>, T up to 2^43 ms (the year 2248).
  const empty = idOf(`0-${((2n ** 43n - 1n) << 23n) | (2n ** 23n - 1n)}`)
  t.equal(encodePosition(`0-${((2n ** 43n - 1n) << 23n) | (2n ** 23n - 1n)}`).length, 15)
  t.ok(empty.length <= 32 * 16 + 7, `redisBus, every channel empty: ${empty.length}`)
  // redisBus entries (ms up to 2^43, a billion entries in one millisecond); memoryBus (8-digit
  // epoch, 2^53 events).
  for (const position of [`${2 ** 43 - 1}-1000000000`, `99999999-${Number.MAX_SAFE_INTEGER}`]) {
    t.ok(idOf(position).length < 800, `${position}: ${idOf(position).length}`)
  }
  t.end()
})

t.test('stream ids are short: base 36, a sequence of 0 left out', (t) => {
  t.equal(encodePosition('1764516000000-0'), (1764516000000).toString(36))
  t.equal(encodePosition('1764516000000-7'), (1764516000000).toString(36) + '-7')
  t.equal(encodePosition('18446744073709551615-18446744073709551615'), '3w5e11264sgsf-3w5e11264sgsf')
  t.equal(decodeMergedId([mergeTag(['x']), encodePosition('01-0')].join(SEPARATOR), mergeTag(['x']), 1)?.[0], '01-0', 'any other id is kept as it is')
  t.ok(mergeTag(['ab']) !== mergeTag(['a', 'b']), 'the tag tells lists of names apart')
  t.end()
})
