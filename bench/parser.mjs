// One parser measurement: `node bench/parser.mjs '<json config>'`, forked by run.mjs.
// Parses the same bytes with fastify-conduit's client parser or with eventsource-parser, in
// this process, and reports events/s:
//   -> { type: 'result', ns, events, bytes } | { type: 'unavailable', reason }
// Inputs (`input`), the same bytes for both, made from a fixed seed:
//   'small'  the bench's tick events (~55 bytes), in 64 KiB chunks (a fast server's writes)
//   'large'  events of ~14 KB of JSON data each (non-ASCII text in it), in 64 KiB chunks
//   'split'  the small events (some with multibyte text) cut into random chunks of 1 to 64 bytes (a slow, chunky proxy),
//            some cuts falling inside a line, a CRLF or a multibyte character
// Both parsers start from bytes, as a client gets them from fetch: eventsource-parser parses
// strings, so its bytes go through a streaming TextDecoder first (what its
// EventSourceParserStream does with TextDecoderStream).
import { boundLifetime, report } from './processes.mjs'
import { tick, tickFrame } from './workload.mjs'

const config = JSON.parse(process.argv[2])
boundLifetime(config.lifetimeMs)

/** The parsers, each as: make one, returning `feed(bytes)` that returns how many events it dispatched. */
const PARSERS = {
  async conduit () {
    const { EventStreamParser } = await import('fastify-conduit/client')
    return () => {
      const parser = new EventStreamParser()
      return (bytes) => parser.feed(bytes).length
    }
  },
  async 'eventsource-parser' () {
    const { createParser } = await import('eventsource-parser')
    return () => {
      let count = 0
      const parser = createParser({ onEvent () { count++ } })
      const decoder = new TextDecoder()
      return (bytes) => {
        const before = count
        parser.feed(decoder.decode(bytes, { stream: true }))
        return count - before
      }
    }
  }
}

let make
try {
  make = await PARSERS[config.contender]()
} catch (err) {
  report({ type: 'unavailable', reason: `import failed: ${err.message.split('\n')[0]}` })
  process.exit(0)
}

const { chunks, events, bytes } = input(config.input, config.events)
// Warm-up: the same input twice (V8 optimizes both parsers' hot loops), then the fastest of
// five measured passes (on a shared machine, the one least disturbed by other processes).
for (let i = 0; i < 2; i++) parse(chunks, events)
let ns = Infinity
for (let i = 0; i < 5; i++) {
  const start = process.hrtime.bigint()
  parse(chunks, events)
  ns = Math.min(ns, Number(process.hrtime.bigint() - start))
}
report({ type: 'result', ns, events, bytes })

function parse (chunks, expected) {
  const feed = make()
  let count = 0
  for (const chunk of chunks) count += feed(chunk)
  if (count !== expected) throw new Error(`${config.contender} parsed ${count} events of ${expected}`)
}

/** The chunks of one input, how many events they hold and their size in bytes. */
function input (kind, count) {
  const random = seeded(0x5eed)
  let text = ''
  for (let i = 0; i < count; i++) {
    if (kind === 'large') {
      const items = Array.from({ length: 160 }, (_, j) => ({ j, name: `item ${i}-${j}`, label: 'é'.repeat(20 + (j % 7)) }))
      text += `event: snapshot\nid: ${i}\ndata: ${JSON.stringify({ i, items })}\n\n`
    } else {
      // Every tenth event's lines end with CRLF, every fiftieth event is preceded by a comment;
      // split, every fifth event has non-ASCII text (multibyte characters to cut).
      const msg = tick(i)
      if (kind === 'split' && i % 5 === 0) msg.data.text = 'héllo wörld ✓'
      const frame = tickFrame(msg)
      text += (i % 50 === 0 ? ': keep-alive\n' : '') + (i % 10 === 0 ? frame.replace(/\n/g, '\r\n') : frame)
    }
  }
  const all = Buffer.from(text)
  const chunks = []
  for (let at = 0; at < all.length;) {
    const size = kind === 'split' ? 1 + Math.floor(random() * 64) : 64 * 1024
    chunks.push(new Uint8Array(all.subarray(at, at + size)))
    at += size
  }
  return { chunks, events: count, bytes: all.length }
}

/** A small deterministic PRNG (mulberry32): the same chunks in every run and for both parsers. */
function seeded (seed) {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
