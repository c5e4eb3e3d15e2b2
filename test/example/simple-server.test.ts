import t, { type Test } from 'tap'
import { simpleServer } from '../../example/simple-server.ts'
import { FrameReader, startPackageApp } from '../support/index.js'

async function start (t: Test): Promise<string> {
  return (await startPackageApp(t, {}, (app) => { app.register(simpleServer, { interval: 5 }) })).url
}

const counter = (value: number): string => `event: counter\nid: ${value}\ndata: {"value":${value}}\n\n`

t.test('/count sends 1 to 10, each with its value as id', async (t) => {
  const url = await start(t)
  const reader = await FrameReader.open(url + '/count')
  t.equal(reader.response.statusCode, 200)
  t.same(await reader.all(), Array.from({ length: 10 }, (_, i) => counter(i + 1)))
})

t.test('/count resumes after Last-Event-ID, and answers 204 once finished', async (t) => {
  const url = await start(t)
  t.same(await (await FrameReader.open(url + '/count', { 'last-event-id': '7' })).all(), [counter(8), counter(9), counter(10)])
  const done = await FrameReader.open(url + '/count', { 'last-event-id': '10' })
  t.equal(done.response.statusCode, 204)
  const junk = await FrameReader.open(url + '/count', { 'last-event-id': 'junk' })
  t.equal(await junk.next(), counter(1), 'an id that is not a count starts over')
  junk.close()
})

t.test('/time ticks with the time as JSON', async (t) => {
  const url = await start(t)
  const reader = await FrameReader.open(url + '/time')
  const frames = [await reader.next(), await reader.next()]
  reader.close()
  for (const frame of frames) {
    const [, id, data] = /^event: time\nid: (\d+)\ndata: (.*)\n\n$/.exec(frame ?? '') ?? []
    t.ok(id, String(frame))
    t.same(JSON.parse(data), { iso: new Date(Number(id)).toISOString(), epoch: Number(id) })
  }
})
