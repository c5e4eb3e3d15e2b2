import t from 'tap'
import type { Channel } from '../../lib/index.js'
import { FrameReader, LogCapture, startApp, uniqueName } from '../support/index.js'

// A where() predicate that throws inside app.sse.merge(): its line is on the merged stream's
// request logger (the request id says which client), as for a stream of one channel.
t.test('merge(): a where() predicate that throws ends the merged stream, logged on its request\'s logger', async (t) => {
  const logs = new LogCapture()
  let news!: Channel
  let room!: Channel
  const { url } = await startApp(t, {}, (app) => {
    news = app.sse.channel(uniqueName('news'))
    room = app.sse.channel(uniqueName('room'))
    app.get('/dash', (request, reply) => reply.sse(app.sse.merge([news.where((message) => {
      if (message.data === 'bad') throw new Error('predicate bug')
      return true
    }), room])))
  }, { logger: logs.logger })
  const stream = await FrameReader.fetch(url + '/dash')
  await news.publish({ data: 'good' })
  t.same((await stream.take(1)).map((frame) => frame.data), ['good'])
  await news.publish({ data: 'bad' })
  await stream.ended()
  const line = await logs.waitFor('predicate threw')
  t.equal((line.err as { message: string }).message, 'predicate bug')
  t.type(line.reqId, 'string', "the merged stream's line carries its request id")
})
