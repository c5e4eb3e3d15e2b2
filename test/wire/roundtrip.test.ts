import t from 'tap'
import { formatEvent } from '../../lib/index.js'
import type { SSEMessage } from '../../lib/index.js'
import { checkRounds, parseAll, random, randomName, randomString, randomValue, sameJson, wellFormed } from './property.js'
import type { Expected } from './property.js'

// Property test: whatever the strings, formatting then parsing with an independent parser
// (eventsource-parser) gives back exactly the events that were sent, and nothing more. The
// frames go through UTF-8 bytes and are fed in random chunks, as a socket would deliver them.
// The schema path has its own in test/schema/roundtrip.test.ts, channels in test/channel/suite.ts.

t.test('random data, event names, ids and comments round-trip', async (t) => {
  for (let seed = 1; seed <= 300; seed++) {
    const next = random(seed)
    const sent: Array<{ data: string, event?: string, id?: string }> = []
    let wire = ''
    for (let i = 0; i < 20; i++) {
      const msg: SSEMessage = { data: randomString(next, 40) }
      const event = randomString(next, 8)
      if (next() < 0.5) msg.event = event
      if (next() < 0.5) msg.id = randomString(next, 8)
      if (next() < 0.2) msg.comment = randomString(next, 10)
      try {
        wire += formatEvent(msg)
      } catch (err) {
        // Only the fields the spec forbids are refused, and nothing is written for them.
        const code = (err as { code: string }).code
        const refused = (code === 'FST_ERR_CONDUIT_INVALID_EVENT_NAME' && /[\r\n]/.test(msg.event ?? '')) ||
          (code === 'FST_ERR_CONDUIT_INVALID_ID' && /[\r\n\0]/.test(String(msg.id)))
        if (!refused) t.fail(`seed ${seed}: unexpected ${code}`)
        continue
      }
      sent.push({
        data: wellFormed(msg.data as string),
        event: msg.event === undefined || msg.event === '' ? undefined : wellFormed(msg.event),
        // eventsource-parser reports the id field of each event (it leaves Last-Event-ID to
        // its caller), so compare per event.
        id: msg.id === undefined ? undefined : wellFormed(String(msg.id))
      })
    }
    const received = parseAll(Buffer.from(wire, 'utf8'), next)
    const got = received.map((e) => ({ data: e.data, event: e.event, id: e.id }))
    const mismatch = sent.findIndex((event, i) => JSON.stringify(got[i]) !== JSON.stringify(event))
    if (mismatch !== -1 || got.length !== sent.length) {
      t.same(got, sent, `seed ${seed}: first difference at event ${mismatch}`)
      return
    }
  }
  t.pass('300 seeds x 20 events round-trip')
})

t.test('any data: a string verbatim, anything else JSON; one event per message, always', async (t) => {
  checkRounds(t, 300, (next) => {
    const expected: Expected[] = []
    let wire = ''
    for (let i = 0; i < 20; i++) {
      const data = randomValue(next)
      const msg: SSEMessage = { data }
      if (next() < 0.5) msg.event = randomName(next, 8)
      if (next() < 0.5) msg.id = randomName(next, 8).replace(/\0/g, '')
      wire += formatEvent(msg)
      expected.push({
        event: msg.event === undefined || msg.event === '' ? undefined : wellFormed(msg.event),
        id: msg.id === undefined ? undefined : wellFormed(String(msg.id)),
        data: typeof data === 'string' ? wellFormed(data) : sameJson(data)
      })
    }
    return { wire, expected }
  })
})

t.test('JSON data round-trips through JSON.parse', async (t) => {
  for (let seed = 1; seed <= 200; seed++) {
    const next = random(seed)
    const value = { text: randomString(next, 50), list: [randomString(next, 5), seed], nested: { s: randomString(next, 5) } }
    const [event] = parseAll(Buffer.from(formatEvent({ event: 'json', data: value }), 'utf8'), next)
    const expected = JSON.parse(JSON.stringify(value).toWellFormed())
    if (JSON.stringify(JSON.parse(event.data)) !== JSON.stringify(expected)) {
      t.same(JSON.parse(event.data), expected, `seed ${seed}`)
      return
    }
  }
  t.pass('200 seeds')
})

t.test('huge lines and many lines', async (t) => {
  const huge = 'x'.repeat(1 << 20)
  const [one] = parseAll(Buffer.from(formatEvent({ data: huge }), 'utf8'), random(1))
  t.equal(one.data.length, huge.length, 'a 1 MiB line')
  const lines = Array.from({ length: 10_000 }, (_, i) => String(i)).join('\r\n')
  const [many] = parseAll(Buffer.from(formatEvent({ data: lines }), 'utf8'), random(2))
  t.equal(many.data, lines.replace(/\r\n/g, '\n'), '10,000 CRLF lines')
})
