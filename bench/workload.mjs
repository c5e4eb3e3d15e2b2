// The events every contender sends, and the helpers servers share. The event is the one the
// issue names: `{ event: 'tick', id, data: { i, text } }`, about 55 bytes on the wire.

export const TEXT = 'hello world'

/** The SSE response headers, as fastify-conduit sends them (Connection is HTTP/1.1's). */
export const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
  connection: 'keep-alive'
}

/** One tick message as an application yields it. */
export function tick (i) {
  return { event: 'tick', id: i, data: { i, text: TEXT } }
}

/**
 * The reconnect storm's history event: a tick whose text is `STORM_TEXT` (512 bytes), so that
 * a history of 1,000 (about 560 KB on the wire) is well above a subscriber's buffer.
 */
export const STORM_TEXT = 'x'.repeat(512)

/** The storm's i-th history event (no id: each contender gives its own, see `historyIds`). */
export function stormTick (i) {
  return { event: 'tick', data: { i, text: STORM_TEXT } }
}

/** `count` ticks from an async generator: the source shape most SSE APIs document. */
export async function * asyncTicks (count) {
  for (let i = 0; i < count; i++) yield tick(i)
}

/** `count` ticks from a sync generator (fastify-conduit accepts any Iterable). */
export function * syncTicks (count) {
  for (let i = 0; i < count; i++) yield tick(i)
}

/**
 * A tick as an event-stream frame, serialized by hand. `id` and `event` are known to be
 * safe here, which is what lets the raw baselines skip the checks a library must make.
 */
export function tickFrame (msg) {
  return 'event: ' + msg.event + '\nid: ' + msg.id + '\ndata: ' + JSON.stringify(msg.data) + '\n\n'
}

/** The heartbeat comment frame, as every contender sends it. */
export const HEARTBEAT = ':\n\n'

/** Fastify listen options shared by every Fastify-based contender. */
export const LISTEN = { host: '127.0.0.1', port: 0, backlog: 8192 }

/** Resolves when `signal` aborts (an idle stream waits on it). */
export function aborted (signal) {
  return new Promise((resolve) => {
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', resolve, { once: true })
  })
}

/** Listens a node:http server on 127.0.0.1 with a deep backlog; resolves with the port. */
export function listenNode (server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(LISTEN, () => resolve(server.address().port))
  })
}

/** `?n=` of a request URL: how many events a stream request asks for. */
export function requestedEvents (url) {
  const n = Number(new URL(url, 'http://127.0.0.1').searchParams.get('n'))
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bad ?n= in ${url}`)
  return n
}

/** The error a contender throws when it cannot run a scenario (not built, no channels, ...). */
export function unavailable (reason) {
  return Object.assign(new Error(reason), { unavailable: true })
}

/**
 * The HTTP/2 server options of the idle-100k-h2 scenario (bench/README.md, "HTTP/2 limits").
 * Node's server already allows 2^32-1 concurrent streams per session (settings
 * .maxConcurrentStreams); what stops many streams on one session is nghttp2's memory per
 * session, capped at 10 MB by default: past about 10,000 open streams on one session new ones
 * are refused and the session ends (GOAWAY). At 1,000 per session the default fits; raised so
 * that the scenario can be rerun with more per session.
 */
export const H2_SERVER_OPTIONS = { maxSessionMemory: 1024 }
