import { Type } from '@sinclair/typebox'
import { EventSource as NpmEventSource } from 'eventsource'
import { createParser } from 'eventsource-parser'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import { EventSource as UndiciEventSource } from 'undici'
import type { Channel } from '../../lib/index.js'
import { startApp, within } from '../support/index.js'
import type { Teardown } from '../support/index.js'
import { PIECES, wellFormed } from './property.js'

// Property-based wire fuzzing through every formatting path, read by three independent clients
// on a real listening server. Shared by test/wire/clients-fuzz.test.ts (a few thousand messages)
// and `npm run soak` (100,000 and more).
//
// Paths: a plain `reply.sse` generator (no schema), a route with `schema.sse` (the compiled
// serializer), a channel's live broadcast and the same channel's replay after Last-Event-ID.
// Clients: eventsource-parser (every field it parses: events, ids, retries, comments), undici's
// EventSource and the `eventsource` package (events as a browser dispatches them, with
// lastEventId). What the wire cannot carry is documented: line breaks in data arrive as LF
// (CRLF and lone CR are line ends, §9.2.6), lone surrogates in a string written verbatim as
// U+FFFD (UTF-8 has none); JSON escapes both, so JSON data round-trips exactly.

/** Names the harness itself uses, and the EventTarget events of an EventSource. */
const RESERVED = new Set(['fin', 'ping', 'open', 'error', 'message'])

/** Text made of what breaks formatters: line breaks, NUL, field-like text, surrogates, long lines. */
export const text = (maxPieces = 12): fc.Arbitrary<string> => fc.array(fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...PIECES, 'data: x\nid: y', 'event:', 'event: forged', 'retry:', 'retry: 1', '\n\nid: forged\n\n', 'id: 1\r\n\r\n', ': comment', '\r\n\r\n') },
  { weight: 5, arbitrary: fc.string({ unit: fc.integer({ min: 0, max: 0xFFFF }).map((code) => String.fromCharCode(code)), maxLength: 8 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }) },
  { weight: 1, arbitrary: fc.integer({ min: 5_000, max: 120_000 }).map((length) => 'L'.repeat(length)) }
), { maxLength: maxPieces }).map((pieces) => pieces.join(''))

/** An event name: mostly valid, sometimes with CR or LF (the wire must refuse it). */
const eventName = fc.oneof(
  { weight: 6, arbitrary: text(3).map((name) => name.replace(/[\r\n]/g, '')) },
  { weight: 1, arbitrary: text(3).map((name) => name + '\n') }
).filter((name) => !RESERVED.has(name.toWellFormed()))

/** An id: mostly valid, sometimes with CR, LF or NUL (refused), sometimes a number. */
const id = fc.oneof(
  { weight: 6, arbitrary: text(3).map((value) => value.replace(/[\r\n\0]/g, '')) },
  { weight: 1, arbitrary: text(3).map((value) => value + '\r') },
  { weight: 1, arbitrary: fc.constant('a\0b') },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 1e9 }) }
)

/** JSON-able data with hostile strings at every depth. */
const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true },
    text(4), fc.integer(), fc.boolean(), fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(text(2), tie('value'), { maxKeys: 3 }))
})).value

export interface PlainMessage { event?: string, id?: string | number, data?: unknown, comment?: string, retry?: number }

const plainMessage: fc.Arbitrary<PlainMessage> = fc.record({
  event: eventName,
  id,
  data: fc.oneof({ weight: 4, arbitrary: text() }, { weight: 1, arbitrary: json }),
  comment: text(4),
  retry: fc.oneof(fc.integer({ min: 0, max: 1e6 }), fc.constant(-1))
}, { requiredKeys: [] })

/** The messages of one run, for each path. */
export interface Batch { plain: PlainMessage[], schema: Array<{ s: string, n?: number, event?: string }>, channel: Array<{ event?: string, data: unknown }> }

/** A batch of up to `maxLength` messages per path. */
export const batch = (maxLength: number): fc.Arbitrary<Batch> => fc.record({
  plain: fc.array(plainMessage, { minLength: 1, maxLength }),
  schema: fc.array(fc.record({ s: text(), n: fc.integer(), event: eventName }, { requiredKeys: ['s'] }), { minLength: 1, maxLength }),
  channel: fc.array(fc.record({ event: eventName, data: fc.oneof({ weight: 4, arbitrary: text() }, { weight: 1, arbitrary: json }) }, { requiredKeys: ['data'] }), { minLength: 1, maxLength })
})

/** One event as a client must see it; `data` is compared exactly, or as parsed JSON. */
interface Expected { event: string | undefined, id: string | undefined, lastEventId: string, data: string, json: boolean }

interface Observed { events: Array<{ event: string | undefined, id: string | undefined, lastEventId?: string, data: string }>, retries?: number[], comments?: string[] }

/** Refused by the wire rules: a name with CR or LF, an id with CR, LF or NUL, a bad retry. */
function refused (msg: PlainMessage): boolean {
  return (msg.event !== undefined && /[\r\n]/.test(msg.event)) ||
    (typeof msg.id === 'string' && /[\r\n\0]/.test(msg.id)) ||
    (msg.retry !== undefined && msg.retry < 0)
}

const eventOf = (name: string | undefined): string | undefined => name === undefined || name === '' ? undefined : wellFormed(name)
const dataOf = (data: unknown): { data: string, json: boolean } =>
  typeof data === 'string' ? { data: wellFormed(data), json: false } : { data: JSON.stringify(data), json: true }

/** What the plain path must deliver: events, and every retry and comment line, nothing else. */
function expectPlain (messages: PlainMessage[]): { events: Expected[], retries: number[], comments: string[] } {
  const events: Expected[] = []
  const retries: number[] = []
  const comments: string[] = []
  let lastEventId = ''
  for (const msg of messages) {
    if (refused(msg)) continue
    if (msg.comment !== undefined) comments.push(...wellFormed(msg.comment).split('\n'))
    if (msg.retry !== undefined) retries.push(msg.retry)
    const idText = msg.id === undefined ? undefined : wellFormed(String(msg.id))
    if (idText !== undefined) lastEventId = idText
    if (msg.data === undefined && msg.event === undefined) continue
    events.push({ event: eventOf(msg.event), id: idText, lastEventId, ...dataOf(msg.data === undefined ? '' : msg.data) })
  }
  return { events, retries, comments }
}

function sameData (want: Expected, got: string): boolean {
  if (!want.json) return got === want.data
  try {
    return JSON.stringify(JSON.parse(got)) === want.data
  } catch {
    return false
  }
}

/** The first difference between what a client saw and what it must see, or undefined. */
function difference (client: string, expected: Expected[], observed: Observed, fields: { retries?: number[], comments?: string[] } = {}): string | undefined {
  // The `eventsource` package sets a MessageEvent's lastEventId to that event's own id field
  // (or ''), not to the last id of the stream as §9.2.6 does (undici does): compare each
  // client against what it implements.
  const perEvent = client.includes('eventsource (npm)')
  const events = observed.events
  for (let i = 0; i < Math.max(expected.length, events.length); i++) {
    const want = expected[i]
    const got = events[i]
    if (want === undefined) return `${client}: a forged event #${i} ${JSON.stringify(got).slice(0, 200)}`
    if (got === undefined) return `${client}: event #${i} missing (${expected.length} expected, ${events.length} received)`
    if ((got.event ?? 'message') !== (want.event ?? 'message')) return `${client}: event #${i} named ${JSON.stringify(got.event)}, not ${JSON.stringify(want.event)}`
    const wantId = got.lastEventId === undefined ? want.id : perEvent ? want.id ?? '' : want.lastEventId
    const gotId = got.lastEventId === undefined ? got.id : got.lastEventId
    if (gotId !== wantId) return `${client}: event #${i} id ${JSON.stringify(gotId)}, not ${JSON.stringify(wantId)}`
    if (!sameData(want, got.data)) return `${client}: event #${i} data ${JSON.stringify(got.data).slice(0, 200)}, not ${JSON.stringify(want.data).slice(0, 200)}`
  }
  if (fields.retries !== undefined && JSON.stringify(observed.retries) !== JSON.stringify(fields.retries)) return `${client}: retries ${JSON.stringify(observed.retries)}, not ${JSON.stringify(fields.retries)}`
  if (fields.comments !== undefined && JSON.stringify(observed.comments) !== JSON.stringify(fields.comments)) return `${client}: comments differ (${observed.comments?.length} received, ${fields.comments.length} expected)`
  return undefined
}

type AnyEventSource = NpmEventSource | UndiciEventSource
const eventSources: Array<[string, (url: string) => AnyEventSource]> = [
  ['eventsource (npm)', (url) => new NpmEventSource(url)],
  ["undici's EventSource", (url) => new UndiciEventSource(url)]
]

/**
 * Reads `url` with an EventSource until the `fin` event, listening to every name in `names`;
 * `ready` (when given) resolves at the first `ping`.
 */
function readEventSource (open: (url: string) => AnyEventSource, url: string, names: Set<string>, ready?: () => void): { done: Promise<Observed>, close (): void } {
  const source = open(url)
  const events: Observed['events'] = []
  let pinged = false
  const done = new Promise<Observed>((resolve) => {
    const record = (e: Event): void => {
      const event = e as MessageEvent
      if (event.type === 'ping') {
        if (!pinged) ready?.()
        pinged = true
        return
      }
      if (event.type === 'fin') {
        source.close()
        resolve({ events })
        return
      }
      events.push({ event: event.type, id: undefined, lastEventId: event.lastEventId, data: event.data })
    }
    for (const name of new Set([...names, 'message', 'fin', 'ping'])) source.addEventListener(name, record)
  })
  return { done, close: () => source.close() }
}

/** Reads `url` with eventsource-parser until `fin`: every event, retry and comment line. */
function readParser (url: string, ready?: () => void): { done: Promise<Observed> } {
  const events: Observed['events'] = []
  const retries: number[] = []
  const comments: string[] = []
  let fin = false
  let pinged = false
  const parser = createParser({
    onEvent: ({ event, id, data }) => {
      if (fin) return
      if (event === 'ping') {
        if (!pinged) ready?.()
        pinged = true
        return
      }
      if (event === 'fin') fin = true
      else events.push({ event, id, data })
    },
    onRetry: (retry) => { if (!fin) retries.push(retry) },
    onComment: (comment) => { if (!fin) comments.push(comment) }
  })
  const done = (async () => {
    const decoder = new TextDecoder()
    try {
      const response = await fetch(url)
      // Leaving the loop cancels the body (aborting the fetch from inside the loop can leave
      // the iteration pending for good).
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }))
        if (fin) break
      }
    } catch {
      // the server dropped the connection: `no fin` below
    }
    if (!fin) events.push({ event: 'no fin', id: undefined, data: '' })
    return { events, retries, comments }
  })()
  return { done }
}

/** The servers of one fuzzing session: the plain and schema routes, and channels per run. */
export interface FuzzServer {
  app: FastifyInstance
  url: string
  /** Runs one batch through every path and every client; the first difference, or undefined. */
  run (input: Batch): Promise<string | undefined>
}

/** How long one run may take before it counts as a hang (a bug: a client never saw `fin`). */
const RUN_TIMEOUT = 10_000

export async function startFuzzServer (t: Teardown): Promise<FuzzServer> {
  const plain = new Map<number, PlainMessage[]>()
  const schema = new Map<number, Array<{ s: string, n?: number, event?: string }>>()
  const channels = new Map<number, Channel>()
  const Item = Type.Object({ s: Type.String(), n: Type.Optional(Type.Number()) })
  const { app, url } = await startApp(t, { onInvalid: 'skip', lastEventIdQuery: 'lastEventId', maxConnections: 100_000 }, (app) => {
    app.get<{ Params: { run: string } }>('/plain/:run', (request, reply) => {
      const messages = plain.get(Number(request.params.run)) ?? []
      return reply.sse(function * () {
        yield * messages
        yield { event: 'fin', data: '' }
      })
    })
    app.get<{ Params: { run: string } }>('/schema/:run', { schema: { sse: { item: Item, fin: Type.Null() } } }, (request, reply) => {
      const items = schema.get(Number(request.params.run)) ?? []
      // An undeclared event name is invalid under schema.sse: skipped.
      return reply.sse(function * () {
        for (const { event, ...data } of items) yield { event: (event ?? 'item') as 'item', data }
        yield { event: 'fin' as const, data: null }
      })
    })
    app.get<{ Params: { run: string } }>('/channel/:run', (request, reply) => reply.sse(channels.get(Number(request.params.run)) as Channel))
  })
  let runs = 0
  const pending = new Set<string>()

  async function check (n: number, input: Batch): Promise<string | undefined> {
    const channel = app.sse.channel(`fuzz-${n}`)
    channels.set(n, channel)
    // Plain and schema: each client opens the stream and reads it to `fin`.
    const plainExpected = expectPlain(input.plain)
    const schemaExpected: Expected[] = input.schema.filter((item) => item.event === undefined || item.event === 'item')
      .map(({ s, n: number }) => ({ event: 'item', id: undefined, lastEventId: '', data: JSON.stringify(number === undefined ? { s } : { s, n: number }), json: true }))
    const plainNames = new Set(plainExpected.events.map((e) => e.event ?? 'message'))
    const checks: Array<Promise<string | undefined>> = []
    for (const [path, expected, fields] of [['plain', plainExpected.events, plainExpected], ['schema', schemaExpected, {}]] as const) {
      const target = `${url}/${path}/${n}`
      checks.push(track(`${path}, eventsource-parser`, readParser(target).done).then((observed) => difference(`${path}, eventsource-parser`, expected, observed, fields)))
      for (const [name, open] of eventSources) {
        checks.push(track(`${path}, ${name}`, readEventSource(open, target, path === 'plain' ? plainNames : new Set(['item'])).done).then((observed) => difference(`${path}, ${name}`, expected, observed)))
      }
    }

    // The channel: three live subscribers, ready once each has seen a ping; then the batch is
    // published; then three more readers replay it after the last ping.
    const channelExpected: Expected[] = []
    const names = new Set(input.channel.map((m) => eventOf(m.event) ?? 'message'))
    let waiting = 3
    let allReady!: () => void
    const readyAll = new Promise<void>((resolve) => { allReady = resolve })
    const ready = (): void => { if (--waiting === 0) allReady() }
    const live: Array<[string, Promise<Observed>]> = [
      ['eventsource-parser', readParser(`${url}/channel/${n}`, ready).done],
      ...eventSources.map(([name, open]): [string, Promise<Observed>] => [name, readEventSource(open, `${url}/channel/${n}`, names, ready).done])
    ]
    let lastPing = ''
    pending.add('channel: subscribers ready')
    do lastPing = await channel.publish({ event: 'ping', data: '' })
    while (!await within(readyAll, 5))
    pending.delete('channel: subscribers ready')
    for (const msg of input.channel) {
      try {
        const published = await channel.publish(msg)
        channelExpected.push({ event: eventOf(msg.event), id: published, lastEventId: published, ...dataOf(msg.data) })
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code !== 'FST_ERR_CONDUIT_INVALID_EVENT_NAME' || !/[\r\n]/.test(msg.event ?? '')) return `channel publish: unexpected ${String(code)}`
      }
    }
    await channel.publish({ event: 'fin', data: '' })
    for (const [name, done] of live) checks.push(track(`channel live, ${name}`, done).then((observed) => difference(`channel live, ${name}`, channelExpected, observed)))
    const replay = `${url}/channel/${n}?lastEventId=${encodeURIComponent(lastPing)}`
    checks.push(track('channel replay, eventsource-parser', readParser(replay).done).then((observed) => difference('channel replay, eventsource-parser', channelExpected, observed)))
    for (const [name, open] of eventSources) checks.push(track(`channel replay, ${name}`, readEventSource(open, replay, names).done).then((observed) => difference(`channel replay, ${name}`, channelExpected, observed)))
    return (await Promise.all(checks)).find((found) => found !== undefined)
  }

  /** Names a check while it runs, so that a run that hangs says which client waits. */
  function track<T> (name: string, check: Promise<T>): Promise<T> {
    pending.add(name)
    return check.finally(() => pending.delete(name))
  }

  return {
    app,
    url,
    async run (input) {
      const n = ++runs
      plain.set(n, input.plain)
      schema.set(n, input.schema)
      let timer: NodeJS.Timeout | undefined
      try {
        return await Promise.race([
          check(n, input),
          new Promise<string>((resolve) => { timer = setTimeout(() => resolve(`run ${n}: no end within ${RUN_TIMEOUT} ms for ${[...pending].join('; ')}`), RUN_TIMEOUT) })
        ])
      } finally {
        pending.clear()
        clearTimeout(timer)
        channels.get(n)?.close()
        channels.delete(n)
        plain.delete(n)
        schema.delete(n)
      }
    }
  }
}
