import { test } from 'tap'
import { reconnectDelay, wait } from '../../lib/client/reconnect.ts'

const low = (): number => 0
const high = (): number => 0.999999

test('own backoff: attempt n waits between minDelay and min(maxDelay, minDelay * 2^n)', async (t) => {
  t.equal(reconnectDelay(1, undefined, 100, 30_000, low), 100)
  t.equal(Math.round(reconnectDelay(1, undefined, 100, 30_000, high)), 200)
  t.equal(Math.round(reconnectDelay(3, undefined, 100, 30_000, high)), 800)
  t.equal(Math.round(reconnectDelay(20, undefined, 100, 30_000, high)), 30_000)
  t.equal(reconnectDelay(20, undefined, 100, 30_000, low), 100)
  t.equal(reconnectDelay(5, undefined, 0, 0, high), 0)
  const delay = reconnectDelay(2, undefined, 100, 30_000)
  t.ok(delay >= 100 && delay <= 400, 'Math.random by default')
})

test('server retry: exactly that on the first attempt, backing off from it after', async (t) => {
  t.equal(reconnectDelay(1, 2000, 100, 30_000, high), 2000)
  t.equal(reconnectDelay(1, 0, 100, 30_000, high), 0)
  t.equal(reconnectDelay(2, 2000, 100, 30_000, low), 2000)
  t.equal(Math.round(reconnectDelay(2, 2000, 100, 30_000, high)), 4000)
  t.equal(Math.round(reconnectDelay(10, 2000, 100, 30_000, high)), 30_000)
  // A retry above maxDelay is still honoured, and not exceeded.
  t.equal(reconnectDelay(1, 60_000, 100, 30_000, high), 60_000)
  t.equal(Math.round(reconnectDelay(4, 60_000, 100, 30_000, high)), 60_000)
  // retry: 0 does not make a tight loop of failures: later attempts grow from minDelay.
  t.equal(Math.round(reconnectDelay(2, 0, 100, 30_000, high)), 200)
})

test('never beyond what setTimeout keeps', async (t) => {
  t.equal(reconnectDelay(1, 1e21, 100, 30_000), 2 ** 31 - 1)
  t.equal(reconnectDelay(3, 1e21, 100, 30_000, high), 2 ** 31 - 1)
})

test('wait: resolves after the delay, at abort, or at once when already aborted', async (t) => {
  await wait(0, undefined)
  const controller = new AbortController()
  const waiting = wait(60_000, controller.signal)
  controller.abort()
  await waiting
  await wait(60_000, AbortSignal.abort())
  t.pass('no 60 s timer kept the test waiting')
})
