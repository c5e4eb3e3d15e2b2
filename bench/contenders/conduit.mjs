// fastify-conduit, used as the contract documents it. Variants for a stream: 'sync' yields from
// a sync generator; 'noschema' declares no schema.sse (no validation, JSON.stringify), to
// measure what validation and the compiled serializer cost. A broadcast uses a channel:
// reply.sse(channel), or with variant 'where' a filter passing half the events, 'subscribe'
// reply.sse(channel.subscribe()), 'iterate' subscribe() iterated in a generator, 'merge' the
// channel and a quiet one on one stream (app.sse.merge: an id of its own per event and stream).
// Variant 'nocheck' (stream): schema.sse with the same JSON Schema, so the same
// fast-json-stringify serializer, but a TypeBox kind registered to accept every value in place
// of the compiled check: what validation alone costs, the serializer being the same.
// Variant 'diagnostics' (stream or broadcast): the same, with a diagnostics_channel subscriber.
// With `h2` (the idle-100k-h2 scenario): Fastify({ http2: true }), cleartext HTTP/2.
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import { Kind, Type, TypeRegistry } from '@sinclair/typebox'
import { aborted, H2_SERVER_OPTIONS, LISTEN, stormTick, tick, tickFrame, unavailable } from '../workload.mjs'

const Tick = Type.Object({ i: Type.Integer(), text: Type.String() })
// Tick's JSON Schema under a kind whose check accepts anything (one registry call per event).
TypeRegistry.Set('BenchAcceptAll', () => true)
const TickUnchecked = { ...Tick, [Kind]: 'BenchAcceptAll' }

export async function start ({ scenario, kind, variant, build, history, heartbeatMs, h2 }, hooks) {
  let fastifyConduit
  try {
    // `build`: another build's dist/esm/index.js (npm run bench -- --compare <dir>).
    ({ default: fastifyConduit } = await import(build === null ? 'fastify-conduit' : pathToFileURL(build).href))
  } catch (err) {
    throw unavailable(err.code === 'ERR_MODULE_NOT_FOUND' ? 'not built (npm run build)' : `import failed: ${err.message.split('\n')[0]}`)
  }
  if (variant === 'diagnostics') {
    // A subscriber on every channel the plugin publishes on: streams are observed from then on.
    const { subscribe } = await import('node:diagnostics_channel')
    const { diagnosticsChannels } = await import(build === null ? 'fastify-conduit' : pathToFileURL(build).href)
    if (diagnosticsChannels === undefined) throw unavailable('no diagnostics_channel events in this build')
    const seen = new Map()
    for (const name of Object.values(diagnosticsChannels)) subscribe(name, () => seen.set(name, (seen.get(name) ?? 0) + 1))
  }
  // idle-100k-h2: cleartext HTTP/2 with the limits the raw node:http2 baseline has.
  const app = Fastify({ logger: false, ...(h2 ? { http2: true, http: H2_SERVER_OPTIONS } : {}) })
  // Heartbeats only where measured (the 100,000 idle streams), every `heartbeatMs`; there and in
  // the storm, no cap on open streams (`maxConnections` defaults to 10,000).
  const load = kind === 'storm' || kind === 'mass'
  await app.register(fastifyConduit, { heartbeat: heartbeatMs ?? false, ...(load ? { maxConnections: Infinity } : {}) })
  if (!app.hasReplyDecorator('sse')) throw unavailable('reply.sse is not decorated yet')

  if (scenario === 'stream') {
    const options = variant === 'noschema' ? {} : { schema: { sse: { tick: variant === 'nocheck' ? TickUnchecked : Tick } } }
    app.get('/sse', options, variant === 'sync'
      ? (request, reply) => {
          const count = Number(request.query.n)
          return reply.sse(function * () { for (let i = 0; i < count; i++) yield tick(i) })
        }
      : (request, reply) => {
          const count = Number(request.query.n)
          return reply.sse(async function * () { for (let i = 0; i < count; i++) yield tick(i) })
        })
    await app.listen(LISTEN)
    return { port: app.server.address().port }
  }

  if (typeof app.sse?.channel === 'function') {
    const channel = app.sse.channel('bench', { schema: { tick: Tick }, ...(history ? { history } : {}) })
    // Reconnect storm: the channel's history, published before the clients come back.
    const historyIds = []
    let historyBytes = 0
    for (let i = 0; i < (history ?? 0); i++) {
      const msg = stormTick(i)
      const id = await channel.publish(msg)
      historyIds.push(id)
      historyBytes += Buffer.byteLength(tickFrame({ ...msg, id }))
    }
    if (variant === 'where') {
      if (typeof channel.where !== 'function') throw unavailable('channel.where() is not in this build yet')
      // Passes half the events (the even ticks), evaluated per subscriber per event.
      app.get('/sse', (request, reply) => reply.sse(channel.where((message) => message.data.i % 2 === 0)))
    } else if (variant === 'subscribe') {
      app.get('/sse', (request, reply) => reply.sse(channel.subscribe()))
    } else if (variant === 'merge') {
      if (typeof app.sse.merge !== 'function') throw unavailable('app.sse.merge() is not in this build yet')
      const quiet = app.sse.channel('bench-quiet')
      app.get('/sse', (request, reply) => reply.sse(app.sse.merge([channel, quiet])))
    } else if (variant === 'iterate') {
      app.get('/sse', (request, reply) => reply.sse(async function * ({ signal }) {
        for await (const message of channel.subscribe({ signal })) yield message
      }))
    } else {
      app.get('/sse', (request, reply) => reply.sse(channel))
    }
    await app.listen(LISTEN)
    return {
      port: app.server.address().port,
      // A subscriber's stream is open (and joining the channel) once reply.sse(channel) ran.
      connectedCount: () => app.sse.stats().openStreams,
      historyIds,
      historyBytes,
      // A channel assigns ids itself (publishing with one is an error): the bench's id is left out.
      publish: (msg) => channel.publish({ event: msg.event, data: msg.data })
    }
  }
  if (kind === 'broadcast') throw unavailable('app.sse.channel is not in this build yet')
  // Idle streams without channels: a source that waits for the client to go away.
  app.get('/sse', (request, reply) => reply.sse(async function * ({ signal }) {
    hooks.connected()
    try {
      await aborted(signal)
    } finally {
      hooks.disconnected()
    }
  }))
  await app.listen(LISTEN)
  return { port: app.server.address().port, note: 'no channels in this build: idle streams are generators awaiting their abort signal' }
}
