import { test } from 'tap'
import { RETRY_AFTER_JITTER, RETRY_JITTER, reconnectDelay, retryAfterDelay, wait } from '../../lib/client/reconnect.ts'

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

test('server retry: around it on the first attempt, backing off from it after', async (t) => {
  t.equal(reconnectDelay(1, 2000, 100, 30_000, low), 1000)
  t.equal(reconnectDelay(1, 2000, 100, 30_000, () => 0.5), 2000)
  t.equal(Math.round(reconnectDelay(1, 2000, 100, 30_000, high)), 3000)
  t.equal(reconnectDelay(1, 0, 100, 30_000, high), 0)
  t.equal(reconnectDelay(2, 2000, 100, 30_000, low), 2000)
  t.equal(Math.round(reconnectDelay(2, 2000, 100, 30_000, high)), 4000)
  t.equal(Math.round(reconnectDelay(10, 2000, 100, 30_000, high)), 30_000)
  // A retry above maxDelay is still honoured.
  t.equal(reconnectDelay(1, 60_000, 100, 30_000, () => 0.5), 60_000)
  t.equal(Math.round(reconnectDelay(4, 60_000, 100, 30_000, high)), 60_000)
  // retry: 0 does not make a tight loop of failures: later attempts grow from minDelay.
  t.equal(Math.round(reconnectDelay(2, 0, 100, 30_000, high)), 200)
})

test('the spread around the server\'s retry, as documented: uniform between half and one and a half times it', async (t) => {
  t.equal(RETRY_JITTER, 0.5)
  // Many samples from Math.random: a reconnect wave after a deploy is spread over the window.
  const retry = 1000
  const samples = Array.from({ length: 10_000 }, () => reconnectDelay(1, retry, 100, 30_000))
  const min = Math.min(...samples)
  const max = Math.max(...samples)
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length
  t.ok(min >= retry * (1 - RETRY_JITTER), `min ${min}`)
  t.ok(max <= retry * (1 + RETRY_JITTER), `max ${max}`)
  t.ok(max - min > 0.95 * 2 * RETRY_JITTER * retry, `the window is used: ${min}..${max}`)
  t.ok(Math.abs(mean - retry) < 20, `the average stays the retry: ${mean}`)
  // Uniform: each tenth of the window holds about a tenth of the samples.
  const buckets = new Array(10).fill(0)
  for (const delay of samples) buckets[Math.min(9, Math.floor((delay - 500) / 100))]++
  for (const count of buckets) t.ok(count > 800 && count < 1200, `bucket ${count}`)
  t.equal(new Set(samples).size > 9000, true, 'no two clients in the same millisecond by design')
})

test('retryAfterDelay: delay-seconds or an HTTP-date, bounded by maxDelay, jittered upwards only', async (t) => {
  const now = Date.parse('Sun, 06 Nov 1994 08:49:37 GMT')
  t.equal(RETRY_AFTER_JITTER, 0.5)
  t.equal(retryAfterDelay('5', now, 30_000, low), 5000)
  t.equal(Math.round(retryAfterDelay('5', now, 30_000, high) as number), 7500)
  t.equal(retryAfterDelay(' 0 ', now, 30_000, high), 0)
  // IMF-fixdate, RFC 850 and asctime (which carries no zone: UTC).
  t.equal(retryAfterDelay('Sun, 06 Nov 1994 08:49:47 GMT', now, 30_000, low), 10_000)
  t.equal(retryAfterDelay('Sunday, 06-Nov-94 08:49:47 GMT', now, 30_000, low), 10_000)
  t.equal(retryAfterDelay('Sun Nov  6 08:49:47 1994', now, 30_000, low), 10_000)
  t.equal(Math.round(retryAfterDelay('Sun, 06 Nov 1994 08:49:47 GMT', now, 30_000, high) as number), 15_000)
  t.equal(retryAfterDelay('Sun, 06 Nov 1994 08:00:00 GMT', now, 30_000, high), 0, 'a date past is now')
  // Bounded: a server (or a proxy) cannot park the client beyond maxDelay (plus the jitter).
  t.equal(retryAfterDelay('3600', now, 30_000, low), 30_000)
  t.equal(Math.round(retryAfterDelay('3600', now, 30_000, high) as number), 45_000)
  t.equal(retryAfterDelay('Fri, 31 Dec 9999 23:59:59 GMT', now, 20, low), 20)
  t.equal(retryAfterDelay('99999999999999999999', now, 1e21, low), 2 ** 31 - 1, 'never beyond what setTimeout keeps')
  // Neither form: no Retry-After at all.
  for (const value of [null, '', '-1', '5.5', '1e3', 'soon', 'Sun, 99 Foo 1994 99:99:99 GMT', '0x10']) {
    t.equal(retryAfterDelay(value, now, 30_000), undefined, JSON.stringify(value))
  }
  // Many samples: never below the Retry-After, up to half again above it.
  const samples = Array.from({ length: 10_000 }, () => retryAfterDelay('2', now, 30_000) as number)
  t.ok(Math.min(...samples) >= 2000 && Math.min(...samples) < 2050)
  t.ok(Math.max(...samples) <= 3000 && Math.max(...samples) > 2950)
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
