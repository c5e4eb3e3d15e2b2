import { FormatRegistry, Type } from '@sinclair/typebox'
import t from 'tap'
import { compileRouteEvents } from '../../lib/index.js'
import type { SSEMessage } from '../../lib/index.js'
import { checkRounds, randomName, randomString, sameJson, wellFormed } from '../wire/property.js'
import type { Expected } from '../wire/property.js'

// Property test of the schema path: whatever a compiled serializer emits, parsing the frames
// with an independent parser gives exactly one event per message, with its name, id and data.
//
// fast-json-stringify writes a string with `format: 'unsafe'` as '"' + str + '"', unescaped
// (its one raw-string path: every other string goes through its escaper or JSON.stringify).
// An application that registers the format with TypeBox (so the check accepts such strings)
// gets raw CR and LF in the serializer's output; they must become data lines, not the end of
// the line. A schema with no JSON Schema form takes the JSON.stringify fallback.
FormatRegistry.Set('unsafe', () => true)
// Any string passes, so random strings reach fast-json-stringify's date-time path (asString).
FormatRegistry.Set('date-time', () => true)

const schemas = {
  note: Type.Object({ text: Type.String(), tags: Type.Array(Type.String()), at: Type.String({ format: 'date-time' }) }),
  raw: Type.Object({ text: Type.String({ format: 'unsafe' }), n: Type.Integer() }),
  rawList: Type.Array(Type.String({ format: 'unsafe' })),
  // Type.Date has no JSON Schema form: fast-json-stringify cannot build it, JSON.stringify runs.
  dated: Type.Object({ when: Type.Date(), text: Type.String() }),
  message: Type.String()
}
const format = compileRouteEvents(schemas)
const names = Object.keys(schemas) as Array<keyof typeof schemas>

/** A message for `name` and the data a client must see: the serializer's text, line breaks as LF. */
function randomEvent (next: () => number, name: keyof typeof schemas): { msg: SSEMessage, data: Expected['data'] } {
  const text = randomString(next, 30)
  switch (name) {
    case 'note': {
      const data = { text, tags: [randomString(next, 5), randomString(next, 5)], at: randomString(next, 10) }
      return { msg: { event: name, data }, data: sameJson(data) }
    }
    case 'raw': {
      // Written unescaped: what arrives is the text as is, whatever it does to the JSON.
      return { msg: { event: name, data: { text, n: 7 } }, data: wellFormed(`{"text":"${text}","n":7}`) }
    }
    case 'rawList': {
      const list = [text, randomString(next, 10)]
      return { msg: { event: name, data: list }, data: wellFormed('[' + list.map((s) => `"${s}"`).join(',') + ']') }
    }
    case 'dated': {
      const data = { when: new Date(Math.floor(next() * 2e12)), text }
      return { msg: { event: name, data }, data: sameJson(data) }
    }
    case 'message':
      return { msg: next() < 0.5 ? { data: text } : { event: name, data: text }, data: sameJson(text) }
  }
}

t.test('schema path: one event per message, whatever the serializer emits', async (t) => {
  checkRounds(t, 300, (next) => {
    const expected: Expected[] = []
    let wire = ''
    for (let i = 0; i < 20; i++) {
      const { msg, data } = randomEvent(next, names[Math.floor(next() * names.length)])
      if (next() < 0.5) msg.id = randomName(next, 8).replace(/\0/g, '')
      if (next() < 0.2) msg.comment = randomString(next, 10)
      wire += format(msg)
      expected.push({
        // eventsource-parser leaves the type undefined when the frame has no `event:` line.
        event: msg.event === undefined || msg.event === 'message' ? undefined : msg.event,
        id: msg.id === undefined ? undefined : wellFormed(String(msg.id)),
        data
      })
    }
    return { wire, expected }
  })
})

t.test('an unsafe string cannot end the event: its line breaks become data lines', async (t) => {
  const frame = format({ event: 'raw', id: '1', data: { text: 'a\n\nid: forged\r\nevent: evil\rdata: x', n: 1 } })
  t.equal(frame, 'event: raw\nid: 1\ndata: {"text":"a\ndata: \ndata: id: forged\ndata: event: evil\ndata: data: x","n":1}\n\n')
  t.equal(frame.indexOf('\n\n'), frame.length - 2, 'one blank line: one event')
})
