import { mock } from 'node:test'
import t from 'tap'
import { memoryBus } from '../../lib/index.js'
import { compareStreamIds, START } from '../../lib/channel/bus.js'

t.test('compareStreamIds orders <ms>-<seq> ids numerically, at any size', async (t) => {
  t.equal(compareStreamIds('5-1', '5-1'), 0)
  t.ok(compareStreamIds('5-2', '5-10') < 0, 'sequence numerically, not as text')
  t.ok(compareStreamIds('10-0', '9-99') > 0, 'milliseconds first')
  t.ok(compareStreamIds('18446744073709551615-1', '18446744073709551614-2') > 0, 'beyond 2^53')
  t.ok(compareStreamIds('7-3', '7-4') < 0)
})

t.test('ids are <epoch>-<seq>, strictly increasing per channel', async (t) => {
  const bus = memoryBus()
  const a = await bus.publish('c', 'data: 1\n\n', 10)
  const b = await bus.publish('c', 'data: 2\n\n', 10)
  t.match(a, /^\d+-1$/)
  t.ok(bus.compare(a, b) < 0)
  t.equal(bus.history, 1000)
})

t.test('replay: within the history exactly what follows; older, unknown or foreign ids replay all with a gap', async (t) => {
  const bus = memoryBus({ history: 3 })
  const ids: string[] = []
  for (let n = 1; n <= 5; n++) ids.push(await bus.publish('c', `data: ${n}\n\n`, 3))
  const idsOf = (replay: { entries: readonly { id: string }[] }): string[] => replay.entries.map((entry) => entry.id)
  // Retained: 3, 4, 5. After 2 (the newest dropped): complete; after 1: a gap.
  t.equal((await bus.replay('c', ids[1])).complete, true)
  t.same(idsOf(await bus.replay('c', ids[1])), ids.slice(2))
  t.same(idsOf(await bus.replay('c', ids[3])), ids.slice(4))
  t.same(idsOf(await bus.replay('c', ids[4])), [])
  t.equal((await bus.replay('c', ids[4])).complete, true)
  const old = await bus.replay('c', ids[0])
  t.same([idsOf(old), old.complete], [ids.slice(2), false])
  const future = await bus.replay('c', ids[0].replace(/-\d+$/, '-99'))
  t.same([idsOf(future), future.complete], [ids.slice(2), false])
  const foreign = await bus.replay('c', '1-3') // another process's (another epoch's) id
  t.same([idsOf(foreign), foreign.complete], [ids.slice(2), false])
  const junk = await bus.replay('c', 'junk')
  t.same([idsOf(junk), junk.complete], [ids.slice(2), false])
  t.same(await bus.replay('nothing', ids[0]), { entries: [], complete: false })
})

t.test('replay from START: the channel from its first entry, a gap once any was dropped', async (t) => {
  const bus = memoryBus({ history: 3 })
  const idsOf = (replay: { entries: readonly { id: string }[] }): string[] => replay.entries.map((entry) => entry.id)
  t.same(await bus.replay('none', START), { entries: [], complete: true }, 'nothing published: nothing missed')
  const ids: string[] = []
  for (let n = 1; n <= 3; n++) ids.push(await bus.publish('c', `data: ${n}\n\n`, 3))
  const whole = await bus.replay('c', START)
  t.same([idsOf(whole), whole.complete], [ids, true], 'within history: all of it, complete')
  t.same(idsOf(await bus.replay('c', START, 2)), ids.slice(0, 2), 'a page')
  ids.push(await bus.publish('c', 'data: 4\n\n', 3))
  const trimmed = await bus.replay('c', START)
  t.same([idsOf(trimmed), trimmed.complete], [ids.slice(1), false], 'the first was dropped: a gap')
})

t.test('a channel whose history changes keeps the newest entries that fit', async (t) => {
  const bus = memoryBus()
  const ids: string[] = []
  for (let n = 1; n <= 6; n++) ids.push(await bus.publish('c', `data: ${n}\n\n`, 4))
  const all = async (): Promise<string[]> => (await bus.replay('c', 'x')).entries.map((entry) => entry.id)
  t.same(await all(), ids.slice(2))
  ids.push(await bus.publish('c', 'data: 7\n\n', 2)) // shrink
  t.same(await all(), ids.slice(5))
  ids.push(await bus.publish('c', 'data: 8\n\n', 5)) // grow: nothing dropped comes back
  ids.push(await bus.publish('c', 'data: 9\n\n', 5))
  t.same(await all(), ids.slice(5))
  t.equal((await bus.replay('c', ids[4])).complete, true, 'the newest dropped id is still within history')
  t.equal((await bus.replay('c', ids[3])).complete, false)
})

t.test('listeners get entries as they are published; stop() ends that', async (t) => {
  const bus = memoryBus()
  const seen: string[] = []
  const listening = bus.listen('c', (id, body) => seen.push(body))
  await listening.ready
  await bus.publish('c', 'one', 10)
  listening.stop()
  await bus.publish('c', 'two', 10)
  t.same(seen, ['one'])
})

t.test('an entry\'s json travels with its body, live and in replays', async (t) => {
  const bus = memoryBus()
  const seen: unknown[] = []
  bus.listen('c', (id, body, json) => seen.push([body, json]))
  const first = await bus.publish('c', 'data: hi\n\n', 10, '"hi"')
  await bus.publish('c', 'data: 1\n\n', 10)
  t.same(seen, [['data: hi\n\n', '"hi"'], ['data: 1\n\n', undefined]])
  const { entries } = await bus.replay('c', 'unknown')
  t.strictSame(entries.map((entry) => [entry.id, entry.json]), [[first, '"hi"'], [entries[1].id, undefined]])
})

t.test('ready() and close() pair up: a bus shared by two apps closes with the last', async (t) => {
  const bus = memoryBus()
  await bus.ready()
  await bus.ready()
  await bus.close()
  t.ok(await bus.publish('c', 'still open', 10))
  const seen: string[] = []
  bus.listen('c', (id, body) => seen.push(body))
  await bus.close()
  await t.rejects(bus.publish('c', 'closed', 10), { code: 'FST_ERR_CONDUIT_CLOSED' })
  await t.rejects(bus.listen('c', () => {}).ready, { code: 'FST_ERR_CONDUIT_CLOSED' })
  bus.listen('c', () => {}).stop()
  t.same(seen, [])
})

t.test('ttl: a channel quiet for ttl loses its history, and is forgotten once nobody listens; ids keep increasing', async (t) => {
  const bus = memoryBus({ ttl: 100 })
  await bus.ready()
  t.teardown(() => bus.close())
  /** Polls (the sweep runs every ttl) until `replay` reports a gap for `afterId`. */
  const expired = async (channel: string, afterId: string): Promise<boolean> => {
    const deadline = Date.now() + 10_000
    while ((await bus.replay(channel, afterId)).complete) {
      if (Date.now() > deadline) return false
      // Meanwhile a busy channel, which the sweeps pass by.
      await bus.publish('busy', 'data: 1\n\n', 10)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    return true
  }
  const quiet = await bus.publish('quiet', 'data: 1\n\n', 10)
  const heard: string[] = []
  bus.listen('heard', (id) => heard.push(id))
  const old = [await bus.publish('heard', 'data: 1\n\n', 10), await bus.publish('heard', 'data: 2\n\n', 10)]
  t.same((await bus.replay('heard', old[0])).entries.map((entry) => entry.id), [old[1]])
  t.ok(await expired('quiet', quiet), 'quiet: forgotten')
  t.ok(await expired('heard', old[0]), 'heard: its history is gone')
  t.same(await bus.replay('heard', old[1]), { entries: [], complete: true }, 'the last id given: nothing was missed')
  const next = await bus.publish('heard', 'data: 3\n\n', 10)
  const again = await bus.publish('quiet', 'data: 2\n\n', 10)
  t.same(heard, [...old, next], 'the listener stays')
  t.ok(bus.compare(next, old[1]) > 0 && bus.compare(again, old[1]) > 0, 'ids go on above every id issued')
  t.same((await bus.replay('quiet', quiet)).entries.map((entry) => entry.id), [again], 'an id from before reads as a gap')

  const forever = memoryBus({ ttl: false })
  await forever.ready()
  await forever.close()
})

t.test('ttl: a channel empty when its position was given is kept a ttl from then; made anew after that, it reads as a gap', async (t) => {
  // Fake setInterval (the sweep) and Date (its clock): the sweeps fall where the test says.
  mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 })
  t.teardown(() => mock.timers.reset())
  const bus = memoryBus({ ttl: 1000 })
  await bus.ready()
  t.teardown(() => bus.close())
  mock.timers.tick(500)
  // A stream of several channels begins: `empty` has no entry (nobody listens to it after).
  const position = await bus.last?.('empty') as string
  await bus.publish('other', 'data: 1\n\n', 10)
  mock.timers.tick(500) // a sweep, half a ttl after the position was given
  const first = await bus.publish('empty', 'data: F1\n\n', 10)
  t.same(await bus.replay('empty', position), { entries: [{ id: first, body: 'data: F1\n\n', json: undefined }], complete: true },
    'away for less than ttl, its first event after: exactly that, no gap')

  const later = await bus.last?.('later') as string
  const lost = await bus.publish('later', 'data: E1\n\n', 10)
  mock.timers.tick(2000) // quiet for ttl: forgotten
  const anew = await bus.publish('later', 'data: F1\n\n', 10)
  t.same(await bus.replay('later', later), { entries: [{ id: anew, body: 'data: F1\n\n', json: undefined }], complete: false },
    'its history dropped and begun anew: a gap, then the new events')
  t.ok(bus.compare(anew, lost) > 0)
})

t.test('options are checked', async (t) => {
  t.throws(() => memoryBus({ ttl: 0 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION', message: /"ttl"/ })
  t.throws(() => memoryBus({ ttl: true as never }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => memoryBus(null as never), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => memoryBus({ history: 0 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.throws(() => memoryBus({ history: 2.5 }), { code: 'FST_ERR_CONDUIT_INVALID_OPTION' })
  t.equal(memoryBus({ history: 7 }).history, 7)
})
