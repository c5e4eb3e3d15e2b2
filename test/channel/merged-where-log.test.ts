// A where() predicate that throws inside a merged stream: logged on the stream's request
// logger (the line carries the request id), as for a stream of one channel.
import t from 'tap'
import { FrameReader, LogCapture, startApp, uniqueName } from '../support/index.js'

t.test('merged: a throwing where() predicate is logged on its request\'s logger; that stream ends', async (t) => {
  const logs = new LogCapture()
  const name = uniqueName('mw')
  const { app, url } = await startApp(t, {}, (app) => {
    const news = app.sse.channel(name)
    app.get('/merged', (request, reply) => reply.sse(app.sse.merge([news.where(() => { throw new Error('predicate bug') })])))
  }, { logger: logs.logger })
  const reader = await FrameReader.open(url + '/merged')
  await app.sse.channel(name).publish({ data: 'x' })
  const line = await logs.waitFor('predicate threw')
  t.equal((line.err as { message: string }).message, 'predicate bug')
  t.equal(typeof line.reqId, 'string', 'the line carries the request id')
  await reader.all()
})
