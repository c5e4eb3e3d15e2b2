import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { FastifyInstance } from 'fastify'
import type { Channel } from '../../lib/index.js'
import { eventually, startApp } from '../support/index.js'
import type { Teardown } from '../support/index.js'

// Connect/disconnect cycles: clients that vanish at random points of a stream's life, for plain
// streams and channel subscribers; then nothing may be left behind. Shared by
// test/stream/churn.test.ts and `npm run soak`.

/** Where a client vanishes. */
export const MOMENTS = ['mid-request', 'before-head', 'mid-event', 'during-heartbeat', 'mid-replay', 'live'] as const
export type Moment = typeof MOMENTS[number]

/** `global.gc`, made available without --expose-gc (the flag can be set at run time). */
export function collector (): () => void {
  setFlagsFromString('--expose_gc')
  return runInNewContext('gc') as () => void
}

/** What is running in this process: handles, timers and the like, by kind (Node's own view). */
export function resources (): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1
  return counts
}

/** True when nothing of any kind runs more than in `before` (fewer is fine: a timer ended). */
export function noMoreThan (before: Record<string, number>): boolean {
  return Object.entries(resources()).every(([kind, count]) => count <= (before[kind] ?? 0))
}

/** Heap in use after full collections, in bytes. */
export async function settledHeap (gc: () => void): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return process.memoryUsage().heapUsed
}

export interface ChurnServer {
  app: FastifyInstance
  port: number
  channel: Channel
  /** The id of the channel's first event: a Last-Event-ID that replays its whole history. */
  firstId: string
}

/**
 * A server with a plain stream (an event every few ms, heartbeats every 2 ms), a handler that
 * waits before its head, and a channel with a replay of 500 events of 2 KiB.
 */
export async function startChurnServer (t: Teardown): Promise<ChurnServer> {
  let channel!: Channel
  const { app, port } = await startApp(t, { heartbeat: 2, maxConnections: 100_000 }, (app) => {
    channel = app.sse.channel('churn', { history: 500 })
    app.get('/plain', (request, reply) => reply.sse(async function * ({ signal }) {
      let n = 0
      while (!signal.aborted) {
        yield { id: n, event: 'tick', data: 'x'.repeat(n++ % 3000) }
        // Sometimes idle long enough for a heartbeat.
        await new Promise((resolve) => setTimeout(resolve, n % 4 === 0 ? 5 : 0))
      }
    }))
    app.get('/late', async (request, reply) => {
      await new Promise((resolve) => setTimeout(resolve, 3))
      return reply.sse([{ data: 'late' }])
    })
    app.get('/channel', (request, reply) => reply.sse(channel))
  })
  let firstId = ''
  for (let n = 0; n < 500; n++) {
    const id = await channel.publish({ event: 'history', data: String(n).padEnd(2048, '.') })
    if (n === 0) firstId = id
  }
  return { app, port, channel, firstId }
}

const REQUEST = (path: string, headers = ''): string =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n${headers}\r\n`

/**
 * One client that vanishes at `moment`, in a random way (destroy, end, reset). Resolves once its
 * socket is closed.
 */
export async function vanish (server: ChurnServer, moment: Moment, random: () => number): Promise<void> {
  const socket = connect(server.port, '127.0.0.1')
  socket.on('error', () => {})
  // Resolved on close, never rejected: an error (a reset) is one way for a client to go.
  const closed = new Promise((resolve) => socket.once('close', resolve))
  await new Promise((resolve) => { socket.once('connect', resolve); socket.once('close', resolve) })
  if (socket.destroyed) return
  const leave = (): void => {
    const how = random()
    if (how < 0.4) socket.destroy()
    else if (how < 0.7) socket.resetAndDestroy()
    else socket.end()
  }
  if (moment === 'mid-request') {
    socket.write(REQUEST('/plain').slice(0, 1 + Math.floor(random() * 40)))
    leave()
  } else if (moment === 'before-head') {
    socket.write(REQUEST('/late'))
    leave()
  } else {
    const replay = moment === 'mid-replay'
    const path = moment === 'live' || replay ? '/channel' : '/plain'
    socket.write(REQUEST(path, replay ? `Last-Event-ID: ${server.firstId}\r\n` : ''))
    await leaveWhen(socket, moment, random)
    leave()
  }
  // A client that half-closed with end() is closed by the server (the stream ends with it).
  setTimeout(() => socket.destroy(), 1000).unref()
  await closed
}

/** Waits for the point of the response where the client leaves. */
function leaveWhen (socket: Socket, moment: Moment, random: () => number): Promise<void> {
  // mid-event: after a random number of body bytes, most often inside a frame; mid-replay:
  // somewhere in the 1 MB replay; during-heartbeat: right after a heartbeat comment arrived;
  // live: once subscribed (the head arrived), after a little while.
  const limit = moment === 'mid-replay' ? 2000 + random() * 600_000 : 200 + random() * 20_000
  return new Promise((resolve) => {
    let seen = 0
    let text = ''
    const onData = (chunk: Buffer): void => {
      seen += chunk.length
      if (moment === 'during-heartbeat') {
        text = (text + chunk.toString('latin1')).slice(-64)
        if (!text.includes('\n:\n') && !text.includes('\n: \n')) return
      } else if (moment === 'live') {
        if (seen === 0) return
      } else if (seen < limit) {
        return
      }
      socket.off('data', onData)
      resolve()
    }
    socket.on('data', onData)
    socket.once('close', () => resolve())
  })
}

/** Runs `cycles` vanishing clients, `concurrency` at a time, the moments in turn. */
export async function churn (server: ChurnServer, cycles: number, concurrency: number, random: () => number): Promise<Record<Moment, number>> {
  const counts = Object.fromEntries(MOMENTS.map((moment) => [moment, 0])) as Record<Moment, number>
  let started = 0
  const worker = async (): Promise<void> => {
    while (started < cycles) {
      const moment = MOMENTS[started++ % MOMENTS.length]
      counts[moment]++
      await vanish(server, moment, random)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return counts
}

/** True once every stream has ended (the server sees each client go). */
export function allEnded (app: FastifyInstance, ms: number): Promise<boolean> {
  return eventually(() => app.sse.stats().openStreams === 0, ms)
}
