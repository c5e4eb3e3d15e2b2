import t from 'tap'
import { metrics } from '../../example/metrics.ts'
import { FrameReader, startPackageApp } from '../support/index.js'

interface Sample { at: number, cpu: number, memory: number, heap: number, eventLoopDelay: number, openStreams: number }

// A channel's frame, as the channel wrote it (its `id:` line first): the route yields the
// subscription's messages unchanged.
const parse = (frame: string | undefined): { id: string, data: Sample } => {
  const [, id, data] = /^id: (\S+)\nevent: metrics\ndata: (.*)\n\n$/.exec(frame ?? '') ?? []
  return { id, data: JSON.parse(data) }
}

t.test('samples every interval; a client that reconnects gets only newer ones', async (t) => {
  const { url } = await startPackageApp(t, {}, (app) => { app.register(metrics, { interval: 20, history: 5 }) })

  const reader = await FrameReader.open(url + '/metrics')
  const first = [parse(await reader.next()), parse(await reader.next()), parse(await reader.next())]
  reader.close()
  t.equal(new Set(first.map(({ id }) => id)).size, first.length, 'each sample has its own id, to resume after')
  for (const { data } of first) {
    t.same(Object.keys(data).sort(), ['at', 'cpu', 'eventLoopDelay', 'heap', 'memory', 'openStreams'])
    t.ok(data.memory > 0 && data.heap > 0 && data.cpu >= 0 && data.eventLoopDelay >= 0)
  }
  t.ok(first[0].data.at < first[1].data.at && first[1].data.at < first[2].data.at)
  t.ok(first.some(({ data }) => data.openStreams >= 1), 'counts its own stream')

  const resumed = await FrameReader.open(url + '/metrics', { 'last-event-id': first[1].id })
  const next = parse(await resumed.next())
  resumed.close()
  t.ok(next.data.at > first[1].data.at, 'nothing at or before Last-Event-ID')
})

t.test('a new client first gets the recent history, at once', async (t) => {
  const { url } = await startPackageApp(t, {}, (app) => { app.register(metrics, { interval: 10, history: 100 }) })
  const early = await FrameReader.open(url + '/metrics')
  const seen = [parse(await early.next()), parse(await early.next()), parse(await early.next())]
  early.close()
  const late = await FrameReader.open(url + '/metrics')
  const first = parse(await late.next())
  late.close()
  t.ok(first.data.at <= seen[2].data.at, 'the backlog comes before live samples')
})
