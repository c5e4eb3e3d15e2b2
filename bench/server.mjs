// One benchmark server: `node bench/server.mjs '<json config>'`, forked by run.mjs. Starts one
// contender for one scenario, then answers the runner over IPC:
//   -> { type: 'ready', port, countsConnections } | { type: 'unavailable', reason }
//   <- { type: 'publish', events }  -> { type: 'published', t0, t1 }   (broadcast)
//   <- { type: 'memory' }           -> { type: 'memory', rss, heapUsed, connected } (after GC)
//   <- { type: 'stats' }            -> { type: 'stats', hwm, rss, cpu }
//   <- { type: 'await', count }     -> { type: 'connected', count } once that many streams are open
//   <- { type: 'profile' }          -> { type: 'profiling' } (a broadcast's CPU profile starts)
//   <- { type: 'loop' }             -> { type: 'looping' } (event-loop delay recorded from now;
//                                      'stats' then adds loopDelay { p50, p99, max } in ms)
//   <- { type: 'cpu', ms }          -> { type: 'cpu', cpuMs, elapsedMs } (CPU over a window)
//   <- { type: 'heap', file }       -> { type: 'heap', file } (a heap snapshot, after GC)
// `ready` carries `historyIds` and `historyBytes` when the contender keeps a history (storm).
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { boundLifetime, procMemory, report } from './processes.mjs'
import { tick } from './workload.mjs'

const config = JSON.parse(process.argv[2])
boundLifetime(config.lifetimeMs)

let connected = 0
let awaitedCount = Infinity
const hooks = {
  /** A stream has flushed its response head and is ready for events. */
  connected () {
    if (++connected === awaitedCount) report({ type: 'connected', count: connected })
  },
  disconnected () { connected-- }
}

let handle
try {
  const contender = await import(`./contenders/${config.contender}.mjs`)
  handle = await contender.start(config, hooks)
} catch (err) {
  if (err.unavailable) report({ type: 'unavailable', reason: err.message })
  else report({ type: 'error', message: `${config.contender} failed to start: ${err.stack}` })
  process.exit(0)
}

// Profiled: a stream from ready on, a broadcast from the first publish on (not its connections).
let loopDelay = null
let profiler = config.profile && config.scenario === 'stream' ? await startProfiler() : null
const cpuAtReady = process.cpuUsage()
report({
  type: 'ready',
  port: handle.port,
  countsConnections: handle.countsConnections !== false || handle.connectedCount !== undefined,
  note: handle.note,
  historyIds: handle.historyIds,
  historyBytes: handle.historyBytes
})

process.on('message', async (msg) => {
  try {
    if (msg.type === 'await') {
      if (handle.connectedCount) {
        // The contender counts its own streams: poll it.
        while (handle.connectedCount() < msg.count) await new Promise((resolve) => setTimeout(resolve, 10))
        report({ type: 'connected', count: handle.connectedCount() })
      } else if (connected >= msg.count) report({ type: 'connected', count: connected })
      else awaitedCount = msg.count
    } else if (msg.type === 'profile') {
      profiler = await startProfiler()
      report({ type: 'profiling' })
    } else if (msg.type === 'loop') {
      loopDelay = monitorEventLoopDelay({ resolution: 10 })
      loopDelay.enable()
      report({ type: 'looping' })
    } else if (msg.type === 'cpu') {
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      await new Promise((resolve) => setTimeout(resolve, msg.ms))
      const cpu = process.cpuUsage(cpu0)
      report({ type: 'cpu', cpuMs: (cpu.user + cpu.system) / 1000, elapsedMs: performance.now() - t0 })
    } else if (msg.type === 'publish') {
      const publish = handle.publish
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < msg.events; i++) await publish(tick(i))
      const t1 = process.hrtime.bigint()
      report({ type: 'published', t0: String(t0), t1: String(t1) })
    } else if (msg.type === 'memory') {
      // Twice: the first full GC can leave garbage that finalizers made collectable.
      globalThis.gc?.()
      globalThis.gc?.()
      await new Promise((resolve) => setTimeout(resolve, 50))
      const { rss, heapUsed } = process.memoryUsage()
      report({ type: 'memory', rss, heapUsed, connected: handle.connectedCount?.() ?? connected })
    } else if (msg.type === 'heap') {
      globalThis.gc?.()
      globalThis.gc?.()
      await new Promise((resolve) => setTimeout(resolve, 50))
      const { writeHeapSnapshot } = await import('node:v8')
      report({ type: 'heap', file: writeHeapSnapshot(msg.file) })
    } else if (msg.type === 'stats') {
      if (profiler) await profiler.stop(config.profile)
      const mem = procMemory() ?? { hwm: process.resourceUsage().maxRSS * 1024, rss: process.memoryUsage.rss() }
      loopDelay?.disable()
      const ms = (ns) => ns / 1e6
      const delay = loopDelay && { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) }
      report({ type: 'stats', ...mem, cpu: process.cpuUsage(cpuAtReady), loopDelay: delay })
    }
  } catch (err) {
    report({ type: 'error', message: `${config.contender}: ${err.stack}` })
  }
})

/**
 * A CPU profile of what is measured, up to 'stats' (not the process's startup and module
 * loading, which `node --cpu-prof` would include), written to `file`.
 */
async function startProfiler () {
  const { Session } = await import('node:inspector/promises')
  const { mkdirSync, writeFileSync } = await import('node:fs')
  const { dirname } = await import('node:path')
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 100 })
  await session.post('Profiler.start')
  return {
    async stop (file) {
      const { profile } = await session.post('Profiler.stop')
      mkdirSync(dirname(file), { recursive: true })
      writeFileSync(file, JSON.stringify(profile))
      session.disconnect()
    }
  }
}
