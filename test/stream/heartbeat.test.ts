import { mock } from 'node:test'
import { setImmediate as turn } from 'node:timers/promises'
import t from 'tap'
import { deferred, FrameReader, startApp } from '../support/index.js'

// `heartbeat: N` means N milliseconds of idleness: a stream that writes nothing gets a comment
// frame every N ms (not 2N: the heartbeat's own write must not count as activity), and one
// that writes is left alone until it has been idle for N ms. The heartbeat timer is faked
// (only setInterval), so the test reads the real stream without depending on the wall clock.

t.test('an idle stream gets one heartbeat per interval, and a write puts the next one off', async (t) => {
  mock.timers.enable({ apis: ['setInterval'] })
  t.teardown(() => mock.timers.reset())
  const write = deferred()
  const end = deferred()
  const { url } = await startApp(t, { heartbeat: 100 }, (app) => {
    app.get('/idle', (request, reply) => reply.sse(async function * () {
      yield { data: 'start' }
      await write.promise
      yield { data: 'write' }
      await end.promise
    }))
  })
  const reader = await FrameReader.open(url + '/idle')
  t.equal(await reader.next(), 'data: start\n\n')
  /** Advances the fake clock by `ms`, one millisecond at a time; returns the heartbeats seen. */
  const advance = async (ms: number): Promise<number> => {
    for (let i = 0; i < ms; i++) mock.timers.tick(1)
    // Let what the ticks wrote reach the client.
    for (let i = 0; i < 5; i++) await turn()
    let beats = 0
    while (reader.pending > 0) {
      t.equal(await reader.next(), ':\n\n')
      beats++
    }
    return beats
  }
  t.equal(await advance(99), 0, 'none before 100 ms of idleness')
  t.equal(await advance(1000), 10, 'then one every 100 ms (1.0 to 1.25 intervals of idleness), not every 200')
  write.resolve()
  t.equal(await reader.next(), 'data: write\n\n')
  t.equal(await advance(99), 0, 'a write puts the next heartbeat off by a whole interval')
  t.equal(await advance(26), 1, 'and it comes within 1.25 intervals')
  end.resolve()
})
