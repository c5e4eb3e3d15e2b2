import { appendFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import type { Teardown } from './app.js'
import { rawGet } from './clients.js'

// The proof tests run small in `npm test` and at full size in `npm run soak`, which sets
// CONDUIT_SOAK=1 and collects what they measured from CONDUIT_SOAK_RESULTS (JSON lines).

/** True under `npm run soak`. */
export const soaking = process.env.CONDUIT_SOAK === '1'

/** `test` in `npm test`, `soak` under `npm run soak`. */
export function proofScale (test: number, soak: number): number {
  return soaking ? soak : test
}

/** Appends what a proof measured to the soak's results (nothing outside the soak). */
export function recordProof (name: string, figures: Record<string, unknown>): void {
  const file = process.env.CONDUIT_SOAK_RESULTS
  if (file !== undefined) appendFileSync(file, JSON.stringify({ name, ...figures }) + '\n')
}

/** Memory the process holds for JavaScript: the heap in use plus Buffers (arrayBuffers). */
export function heldBytes (): number {
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return heapUsed + arrayBuffers
}

/**
 * The peak of {@link heldBytes} above `baseline`, sampled every 5 ms and whenever `sample()` is
 * called (a busy loop starves the timer).
 */
export function memoryPeak (baseline: number): { sample (): void, stop (): number } {
  let peak = 0
  const sample = (): void => { peak = Math.max(peak, heldBytes() - baseline) }
  const timer = setInterval(sample, 5)
  return {
    sample,
    stop: () => {
      clearInterval(timer)
      sample()
      return peak
    }
  }
}

/**
 * `count` clients of `path` on raw sockets that send their request and never read (paused),
 * destroyed when the test ends.
 */
export function pausedClients (t: Teardown, port: number, path: string, count: number): Socket[] {
  const sockets: Socket[] = []
  t.teardown(() => { for (const socket of sockets) socket.destroy() })
  for (let i = 0; i < count; i++) {
    const socket = rawGet(port, path, { Accept: 'text/event-stream' })
    socket.on('error', () => {})
    socket.pause()
    sockets.push(socket)
  }
  return sockets
}
