import { test } from 'tap'
import { createParser } from 'eventsource-parser'
import { EventStreamParser, type ParsedEvent } from '../../lib/client/parser.ts'

const encoder = new TextEncoder()
const bytes = (text: string): Uint8Array => encoder.encode(text)

/** Feeds `chunks` (text or raw bytes) to a new parser; returns every event and the parser. */
function parse (chunks: Array<string | Uint8Array>, lastEventId?: string): { events: ParsedEvent[], parser: EventStreamParser } {
  const parser = new EventStreamParser(lastEventId)
  const events: ParsedEvent[] = []
  for (const chunk of chunks) events.push(...parser.feed(typeof chunk === 'string' ? bytes(chunk) : chunk))
  return { events, parser }
}

/** Every way of cutting `data` in two, plus one byte at a time. */
function splits (data: Uint8Array): Uint8Array[][] {
  const out: Uint8Array[][] = []
  for (let i = 0; i <= data.length; i++) out.push([data.subarray(0, i), data.subarray(i)])
  out.push(Array.from(data, (byte) => Uint8Array.of(byte)))
  return out
}

const message = (data: string, id = '', event = 'message'): ParsedEvent => ({ event, data, id })

// Named fixture streams: the same frames with each kind of line ending.
const FIXTURES: Record<string, { stream: string, events: ParsedEvent[] }> = {
  LF: {
    stream: 'event: token\nid: 1\ndata: a\ndata: b\n\ndata: c\n\n',
    events: [message('a\nb', '1', 'token'), message('c', '1')]
  },
  CR: {
    stream: 'event: token\rid: 1\rdata: a\rdata: b\r\rdata: c\r\r',
    events: [message('a\nb', '1', 'token'), message('c', '1')]
  },
  CRLF: {
    stream: 'event: token\r\nid: 1\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n',
    events: [message('a\nb', '1', 'token'), message('c', '1')]
  },
  mixed: {
    stream: 'event: token\rid: 1\r\ndata: a\ndata: b\r\n\rdata: c\n\r\n',
    events: [message('a\nb', '1', 'token'), message('c', '1')]
  },
  BOM: {
    stream: '\uFEFFdata: a\n\n',
    events: [message('a')]
  },
  'BOM only once': {
    // The UTF-8 decode strips one BOM; the second one is part of the field name `\uFEFFdata`.
    stream: '\uFEFF\uFEFFdata: a\n\ndata: b\n\n',
    events: [message('b')]
  },
  multibyte: {
    stream: 'event: é\ndata: 😀 ü 中文\n\n',
    events: [message('😀 ü 中文', '', 'é')]
  },
  comments: {
    stream: ': hello\n:\n: data: no\ndata: a\n: between\ndata: b\n\n:only a comment\n\n',
    events: [message('a\nb')]
  },
  'empty data': {
    stream: 'data:\n\ndata\n\ndata: \n\ndata:\ndata:\n\n',
    events: [message(''), message(''), message(''), message('\n')]
  },
  'no data, no event': {
    // "If the data buffer is an empty string, set the data buffer and the event type buffer to
    // the empty string and return": the type does not leak into the next frame.
    stream: 'event: lost\n\nid: 1\nretry: 5\n\ndata: a\n\n',
    events: [message('a', '1')]
  },
  'field without colon': {
    stream: 'event: x\nevent\ndata: a\n\nid: 1\n\nid\ndata: b\n\nretry\nunknown\ndata: c\n\n',
    events: [message('a'), message('b'), message('c')]
  },
  'one space stripped': {
    stream: 'data:a\n\ndata:  a\n\ndata:\ta\n\nevent:  x\ndata: b\n\n',
    events: [message('a'), message(' a'), message('\ta'), message('b', '', ' x')]
  },
  'case sensitive names': {
    stream: 'Data: a\n\nEVENT: x\ndata: b\n\n',
    events: [message('b')]
  },
  'colon in value': {
    stream: 'data: a: b\n\nevent: x:y\ndata: c\n\n',
    events: [message('a: b'), message('c', '', 'x:y')]
  },
  'last event type wins': {
    stream: 'event: a\nevent: b\ndata: x\n\n',
    events: [message('x', '', 'b')]
  },
  'empty event type is message': {
    stream: 'event: x\nevent:\ndata: a\n\n',
    events: [message('a')]
  },
  'ids persist': {
    stream: 'id: 1\ndata: a\n\ndata: b\n\nid: 2\n\ndata: c\n\nid:\ndata: d\n\n',
    events: [message('a', '1'), message('b', '1'), message('c', '2'), message('d', '')]
  },
  'id with NUL ignored': {
    stream: 'id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\nid: \0\ndata: c\n\n',
    events: [message('a', '1'), message('b', '1'), message('c', '1')]
  },
  'NUL in data kept': {
    stream: 'data: a\0b\n\n',
    events: [message('a\0b')]
  },
  'incomplete event dropped': {
    stream: 'data: a\n\ndata: b\n',
    events: [message('a')]
  },
  'unterminated line dropped': {
    stream: 'data: a\n\ndata: b',
    events: [message('a')]
  }
}

test('fixtures, whole and cut at every byte', async (t) => {
  for (const [name, { stream, events }] of Object.entries(FIXTURES)) {
    const data = bytes(stream)
    t.same(parse([data]).events, events, name)
    let same = true
    for (const chunks of splits(data)) {
      const got = parse(chunks).events
      if (JSON.stringify(got) !== JSON.stringify(events)) {
        t.same(got, events, `${name}, cut as ${chunks.map((c) => c.length).join('+')}`)
        same = false
        break
      }
    }
    t.ok(same, `${name}: every cut gives the same events`)
  }
})

test('BOM split across chunks is still stripped', async (t) => {
  t.same(parse([Uint8Array.of(0xEF), Uint8Array.of(0xBB), Uint8Array.of(0xBF), 'data: a\n\n']).events, [message('a')])
})

test('BOM after the start of the stream is not stripped', async (t) => {
  const { events } = parse(['data: a\n\n', '\uFEFFdata: b\n\ndata: c\n\n'])
  t.same(events, [message('a'), message('c')])
})

test('invalid UTF-8 becomes U+FFFD', async (t) => {
  const { events } = parse([bytes('data: a'), Uint8Array.of(0xFF, 0xC3), bytes('\n\n')])
  t.same(events, [message('a\uFFFD\uFFFD')])
})

test('multibyte characters split across chunks', async (t) => {
  const data = bytes('data: é😀中\n\n')
  for (let i = 6; i < data.length - 2; i++) {
    t.same(parse([data.subarray(0, i), data.subarray(i)]).events, [message('é😀中')], `cut at ${i}`)
  }
})

test('ASCII and other text in turn, cut anywhere in three chunks', async (t) => {
  // ASCII chunks and the others take different decoders; a cut sequence waits for the next
  // chunk whichever decodes it.
  const data = bytes('data: a\n\ndata: é😀\n\nid: 中\ndata: b\n\ndata: c\n\n')
  const expected = [message('a'), message('é😀'), message('b', '中'), message('c', '中')]
  for (let i = 1; i < data.length; i++) {
    for (let j = i; j < data.length; j++) {
      const chunks = [data.subarray(0, i), data.subarray(i, j), data.subarray(j)]
      t.same(parse(chunks).events, expected, `cut at ${i} and ${j}`)
    }
  }
  t.same(parse(Array.from(data, (byte) => Uint8Array.of(byte))).events, expected, 'byte by byte')
})

test('CR at the end of a chunk, LF at the start of the next: one line break', async (t) => {
  t.same(parse(['data: a\r', '\ndata: b\r', '\n\r', '\n']).events, [message('a\nb')])
  // An empty chunk, or one holding only part of a character, does not forget the CR.
  t.same(parse(['data: a\r', '', '\n\n']).events, [message('a')])
  t.same(parse([bytes('data: a\r'), Uint8Array.of(0xC3), Uint8Array.of(0xA9), bytes('\n\n')]).events, [message('a')])
  // A CR followed by anything else is a line break of its own.
  t.same(parse(['data: a\r', '\r']).events, [message('a')])
  t.same(parse(['data: a\r', 'data: b\r', '\r']).events, [message('a\nb')])
})

test('huge lines and many lines', async (t) => {
  const big = 'x'.repeat(1 << 20)
  const data = bytes(`data: ${big}\n\n`)
  const chunks: Uint8Array[] = []
  for (let i = 0; i < data.length; i += 65536) chunks.push(data.subarray(i, i + 65536))
  const { events } = parse(chunks)
  t.equal(events.length, 1)
  t.equal(events[0].data.length, big.length)
  t.ok(events[0].data === big)

  const lines = Array.from({ length: 10_000 }, (_, i) => `data: ${i}\n`).join('') + '\n'
  const many = parse([lines]).events
  t.equal(many.length, 1)
  t.equal(many[0].data.split('\n').length, 10_000)
})

test('retry: only ASCII digits set the reconnection time, at once', async (t) => {
  const bad = parse(['retry: 12a\ndata: a\n\nretry:\ndata: b\n\nretry: -1\nretry: 1.5\nretry:  5\nretry: ١\nretry\ndata: c\n\n'])
  t.same(bad.events, [message('a'), message('b'), message('c')])
  t.equal(bad.parser.retry, undefined)

  const good = parse(['retry: 1000\ndata: a\n\ndata: b\n\nretry: 007\n'])
  t.same(good.events, [{ ...message('a'), retry: 1000 }, message('b')])
  // No blank line yet: the reconnection time changes as soon as the field is read.
  t.equal(good.parser.retry, 7)

  const alone = parse(['retry: 20\n\n'])
  t.same(alone.events, [])
  t.equal(alone.parser.retry, 20)
})

test('last event ID: seeded, moved at the blank line, also by frames without data', async (t) => {
  const seeded = parse(['data: a\n\n'], '41')
  t.same(seeded.events, [message('a', '41')])
  t.equal(seeded.parser.lastEventId, '41')

  const pending = parse(['data: a\n\nid: 7\n'])
  t.equal(pending.parser.lastEventId, '', 'not before the frame ends')
  t.equal(parse(['data: a\n\nid: 7\n\n']).parser.lastEventId, '7')
  t.equal(parse(['id: 7\n\nid\n\n']).parser.lastEventId, '', 'an empty id clears it')
})

test('feed returns only the events completed by that chunk', async (t) => {
  const parser = new EventStreamParser()
  t.same(parser.feed(bytes('data: a\n')), [])
  t.same(parser.feed(bytes('\ndata: b\n\ndata: c')), [message('a'), message('b')])
  t.same(parser.feed(bytes('\n\n')), [message('c')])
  t.same(parser.feed(new Uint8Array(0)), [])
})

// A small seeded PRNG (mulberry32), so that a failure can be replayed.
function random (seed: number): () => number {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

// Weighted towards frames that dispatch: `data: ` and blank lines come up more often.
const TOKENS = [
  'data', 'data:', 'data: ', 'data: ', 'data: ', '\n\n', '\n\n', 'event:', 'event: ', 'id:', 'id: ', 'retry:', 'retry: ', ':', ': ',
  'x', 'abc', ' ', '1', '42', 'é', '😀', '\0', 'Data:', 'other:', '\n', '\n', '\n', '\r', '\r\n', '\n\n'
]

test('same events as eventsource-parser on random streams', async (t) => {
  const rand = random(0xC0FFEE)
  let compared = 0
  const pick = (n: number): number => Math.floor(rand() * n)
  for (let round = 0; round < 1000; round++) {
    let text = ''
    const length = 1 + pick(60)
    for (let i = 0; i < length; i++) text += TOKENS[pick(TOKENS.length)]
    // eventsource-parser holds back a CR that ends its input (it might be half a CRLF); two
    // LFs at the end flush it and end the last frame for both parsers.
    text += '\n\n'

    const theirs: Array<{ event: string, data: string, id?: string }> = []
    let theirRetry: number | undefined
    const reference = createParser({
      onEvent: (ev) => theirs.push({ event: ev.event ?? 'message', data: ev.data, id: ev.id }),
      onRetry: (ms) => { theirRetry = ms }
    })
    let at = 0
    while (at < text.length) {
      const next = at + 1 + pick(12)
      reference.feed(text.slice(at, next))
      at = next
    }

    const data = bytes(text)
    const chunks: Uint8Array[] = []
    at = 0
    while (at < data.length) {
      const next = at + 1 + pick(12)
      chunks.push(data.subarray(at, next))
      at = next
    }
    const { events: ours, parser } = parse(chunks)

    const fail = (what: string): void => { t.fail(`round ${round}: ${what} differ for ${JSON.stringify(text)}`) }
    if (ours.length !== theirs.length) {
      fail('event counts')
      continue
    }
    compared += ours.length
    for (let i = 0; i < ours.length; i++) {
      // eventsource-parser reports only an id set in the frame itself; ours is the last event
      // ID string, which persists, so compare where theirs has one.
      if (ours[i].event !== theirs[i].event || ours[i].data !== theirs[i].data ||
        (theirs[i].id !== undefined && ours[i].id !== theirs[i].id)) {
        fail(`event ${i}`)
      }
    }
    if (parser.retry !== theirRetry) fail('retry')
  }
  t.ok(compared >= 1000, `${compared} events compared over 1000 random streams`)
})

test('onComment: each comment without the colon and one space, in order among the events', async (t) => {
  const seen: string[] = []
  const events: ParsedEvent[] = []
  const parser = new EventStreamParser('', { onComment: (comment) => seen.push(`${events.length}:${comment}`) })
  const returned = parser.feed(bytes(': gap\n\ndata: a\n\n:gap\n:  two spaces\n:\ndata: b\n: inside\n\n'), events)
  t.equal(returned, events, 'appended to the array given')
  t.same(events, [message('a'), message('b')])
  t.same(seen, ['0:gap', '1:gap', '1: two spaces', '1:', '1:inside'])
  // Split anywhere, the comments are the same.
  for (const chunks of splits(bytes(': gap\r\n:x\r\n\r\n'))) {
    const comments: string[] = []
    const split = new EventStreamParser('', { onComment: (comment) => comments.push(comment) })
    for (const chunk of chunks) split.feed(chunk)
    t.same(comments, ['gap', 'x'])
  }
})

test('maxEventSize: an event is its lines in UTF-8, line ends included, up to the blank line', async (t) => {
  // 'data: abc\n' is 10 bytes; é is 2, 中 is 3, 😀 is 4 (one surrogate pair).
  const frames: Array<[string, number]> = [
    ['data: abc\n\n', 10],
    ['data: é\n\n', 9],
    ['data: 中\n\n', 10],
    ['data: 😀\n\n', 11],
    ['event: x\r\nid: 1\r\n: note\r\ndata: 中é😀a\r\n\r\n', 10 + 7 + 8 + 6 + 3 + 2 + 4 + 1 + 2],
    ['retry: 5\r\rdata: a\r\r', 9]
  ]
  for (const [frame, size] of frames) {
    for (const chunks of splits(bytes(frame))) {
      const fits = new EventStreamParser('', { maxEventSize: size })
      const events = chunks.flatMap((chunk) => fits.feed(chunk))
      t.equal(events.length, 1, `${JSON.stringify(frame)} in ${size} bytes, split as ${chunks.map((c) => c.length).join('+')}`)

      const small = new EventStreamParser('', { maxEventSize: size - 1 })
      t.throws(() => { for (const chunk of chunks) small.feed(chunk) }, { code: 'FST_ERR_CONDUIT_CLIENT_EVENT_TOO_LARGE', maxEventSize: size - 1 })
    }
  }
  // Lone surrogates (not a pair) are three bytes each, as U+FFFD would be.
  const lone = new EventStreamParser('', { maxEventSize: 6 + 3 + 1 })
  t.same(lone.feed(bytes('data: \uD800\n\n')).length, 1)
  // Long text too (counted another way), in one chunk or with the event's start in the one before.
  const long = `data: ${'中é😀a'.repeat(2000)}\n\n`
  const size = bytes(long).length - 1
  for (const chunks of [[`data: a\n\n${long}`], [`data: a\n\n${long.slice(0, 9000)}`, long.slice(9000)]]) {
    const fits = new EventStreamParser('', { maxEventSize: size })
    t.equal(chunks.flatMap((chunk) => fits.feed(bytes(chunk))).length, 2)
    const small = new EventStreamParser('', { maxEventSize: size - 1 })
    t.throws(() => { for (const chunk of chunks) small.feed(bytes(chunk)) }, { code: 'FST_ERR_CONDUIT_CLIENT_EVENT_TOO_LARGE' })
  }
})

test('maxEventSize: each event counts from the end of the one before; many small events never add up', async (t) => {
  const parser = new EventStreamParser('', { maxEventSize: 10 })
  parser.feed(bytes('data: a'))
  let events = 0
  for (let i = 0; i < 1000; i++) events += parser.feed(bytes('b\n\ndata: a')).length
  t.equal(events, 1000, 'the unfinished tail counts toward its own event only')
  t.equal(parser.feed(bytes('bc\n\n')).length, 1)
  // Heartbeats (comment frames) end with a blank line too.
  for (let i = 0; i < 1000; i++) parser.feed(bytes(':\n\n'))
  t.equal(parser.feed(bytes('data: abc\n\n')).length, 1)
})

test('maxEventSize: an endless line is refused as soon as it passes the limit, in any chunking', async (t) => {
  const parser = new EventStreamParser('', { maxEventSize: 1000 })
  const chunk = bytes('x'.repeat(100))
  let fed = 0
  t.throws(() => { for (;;) { parser.feed(chunk); fed++ } }, { code: 'FST_ERR_CONDUIT_CLIENT_EVENT_TOO_LARGE', type: 'event-too-large' })
  t.equal(fed, 10, 'the 11th chunk passed it')
  // One chunk holding a whole event too large, after a small one.
  const whole = new EventStreamParser('', { maxEventSize: 1000 })
  t.throws(() => whole.feed(bytes(`data: a\n\ndata: ${'x'.repeat(1000)}\n\n`)), { code: 'FST_ERR_CONDUIT_CLIENT_EVENT_TOO_LARGE' })
  // Without the option: 4 MiB.
  const byDefault = new EventStreamParser()
  const mib = bytes('y'.repeat(1024 * 1024))
  for (let i = 0; i < 4; i++) byDefault.feed(mib)
  t.throws(() => byDefault.feed(bytes('y')), { code: 'FST_ERR_CONDUIT_CLIENT_EVENT_TOO_LARGE', maxEventSize: 4 * 1024 * 1024 })
})

test('maxEventSize: a multibyte character cut by chunks, even byte by byte, is counted once', async (t) => {
  // Events spanning many chunks count the bytes of chunks without a blank line; the decoder
  // holds a cut sequence for the next chunk, and so does the count.
  for (const text of ['data: 😀😀😀\n\n', 'data: 中中中\n\n', 'data: ééé\n\n', 'data: a😀中é\n\n']) {
    const data = bytes(text)
    const size = data.length - 1
    const parser = new EventStreamParser('', { maxEventSize: size })
    const events = Array.from(data, (byte) => parser.feed(Uint8Array.of(byte))).flat()
    t.same(events.map((e) => e.data), [text.slice(6, -2)])
    const tight = new EventStreamParser('', { maxEventSize: size - 1 })
    t.throws(() => { for (const byte of data) tight.feed(Uint8Array.of(byte)) }, { code: 'FST_ERR_CONDUIT_CLIENT_EVENT_TOO_LARGE' })
  }
  // An empty chunk changes nothing.
  const parser = new EventStreamParser('', { maxEventSize: 10 })
  parser.feed(Uint8Array.of(0x64, 0x61, 0x74, 0x61, 0x3A, 0x20, 0xC3))
  parser.feed(new Uint8Array())
  t.same(parser.feed(Uint8Array.of(0xA9, 0x0A, 0x0A)), [message('é')])
})

test('where eventsource-parser departs from §9.2.6: an id in a frame without data still moves the last event ID', async (t) => {
  // "Dispatch the event" step 1 sets the last event ID before step 2 returns for empty data:
  // a resuming client must send 7. eventsource-parser reports ids only on the events it
  // dispatches, so this id reaches nobody through it; ours keeps it.
  const text = 'id: 7\n\ndata: a\n\n'
  const theirs: Array<string | undefined> = []
  createParser({ onEvent: (ev) => theirs.push(ev.id) }).feed(text)
  t.same(theirs, [undefined])
  const { events, parser } = parse([text])
  t.same(events, [message('a', '7')])
  t.equal(parser.lastEventId, '7')
})

test('a colon is a field separator only within its own line', async (t) => {
  // The parser reads lines in place in the chunk: a colon on a later line must not split
  // a line that has none (its whole text is the field name, ignored).
  const line = 'data'.repeat(1000)
  t.same(parse([`${line}\ndata\nevent\nid\ndata: after\n\n`]).events, [message('\nafter')])
  t.same(parse([`data\n${line}: x\n\n`]).events, [message('')])
})
