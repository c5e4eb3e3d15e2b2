import t, { type Test } from 'tap'
import { progress } from '../../example/progress.ts'
import { FrameReader, startPackageApp } from '../support/index.js'

async function start (t: Test): Promise<string> {
  return (await startPackageApp(t, {}, (app) => { app.register(progress, { interval: 1 }) })).url
}

const parse = (frame: string | undefined): { id: string, data: { progress: number, status: string, message: string } } => {
  const [, id, data] = /^event: progress\nid: (\d+)\ndata: (.*)\n\n$/.exec(frame ?? '') ?? []
  return { id, data: JSON.parse(data) }
}

t.test('progress goes from 0 to 100 in steps of 5, then ends', async (t) => {
  const url = await start(t)
  const events = (await (await FrameReader.open(url + '/download')).all()).map(parse)
  t.same(events.map((event) => event.data.progress), Array.from({ length: 21 }, (_, i) => i * 5))
  t.same(events.map((event) => event.id), events.map((event) => String(event.data.progress)))
  t.same(events.at(-1)?.data, { progress: 100, status: 'done', message: '5 files downloaded' })
  t.ok(events.slice(0, -1).every((event) => event.data.status === 'downloading'))
})

t.test('resumes after Last-Event-ID; after 100 it answers 204', async (t) => {
  const url = await start(t)
  const events = (await (await FrameReader.open(url + '/download', { 'last-event-id': '50' })).all()).map(parse)
  t.same(events.map((event) => event.data.progress), [55, 60, 65, 70, 75, 80, 85, 90, 95, 100])
  t.equal((await FrameReader.open(url + '/download', { 'last-event-id': '100' })).response.statusCode, 204)
})
