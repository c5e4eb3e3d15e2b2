import t from 'tap'
import { notifications } from '../../example/notifications.ts'
import { FrameReader, startPackageApp } from '../support/index.js'

// A channel writes `id:` before `event:`; field order within a frame does not matter (WHATWG).
const parse = (frame: string | undefined): { id: string, event: string, data: { title: string, level: string, at: string } } => {
  const fields = Object.fromEntries((frame ?? '').trim().split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]))
  return { id: fields.id, event: fields.event, data: JSON.parse(fields.data) }
}

t.test('a published notification reaches every subscriber; a reconnecting one gets what it missed', async (t) => {
  const { url } = await startPackageApp(t, {}, (app) => { app.register(notifications) })
  const publish = (body: unknown): Promise<Response> => fetch(url + '/notifications', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })

  const first = await FrameReader.open(url + '/notifications')
  const second = await FrameReader.open(url + '/notifications')
  t.equal(first.response.statusCode, 200)

  const response = await publish({ title: 'Deployed', level: 'success' })
  t.equal(response.status, 202)
  const { id } = await response.json() as { id: string }
  const [a, b] = [parse(await first.next()), parse(await second.next())]
  t.equal(a.id, id, 'the id publish returned')
  t.equal(a.event, 'notification')
  t.match(a.data, { title: 'Deployed', level: 'success' })
  t.ok(!Number.isNaN(Date.parse(a.data.at)))
  t.same(b, a, 'both subscribers get the same event')
  first.close()

  await publish({ title: 'Missed while away' })
  t.match(parse(await second.next()).data, { title: 'Missed while away', level: 'info' }, 'level defaults to info')
  second.close()

  const back = await FrameReader.open(url + '/notifications', { 'last-event-id': id })
  t.match(parse(await back.next()).data, { title: 'Missed while away' }, 'replayed after Last-Event-ID')
  await publish({ title: 'Live again', level: 'warning' })
  t.match(parse(await back.next()).data, { title: 'Live again', level: 'warning' })
  back.close()

  t.equal((await publish({ title: '' })).status, 400)
  t.equal((await publish({ title: 'x', level: 'panic' })).status, 400)
})
