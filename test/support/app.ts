import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import fastifyConduit from '../../lib/index.js'
import type { Channel, ChannelOptions, FastifyConduitOptions } from '../../lib/index.js'

/** The tap test object, as far as these helpers need it. */
export interface Teardown {
  teardown (fn: () => unknown): void
}

/** Listens on 127.0.0.1, port 0; returns the base URL. */
export async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

type Conduit = typeof fastifyConduit
type Routes = (app: FastifyInstance) => void
type Started = Promise<{ app: FastifyInstance, url: string, port: number }>

/** Fastify's options for startApp, and what a test needs done before the plugin is registered. */
export interface AppOptions extends FastifyServerOptions {
  /** An HTTP/2 (h2c) server; the app is still typed as the HTTP/1.1 one, as the routes differ in nothing. */
  http2?: boolean
  /**
   * Runs on the bare instance before the plugin is registered (and is awaited): another plugin
   * that must come first, shared schemas, a route registered before the plugin.
   */
  before?: (app: FastifyInstance) => unknown
}

/**
 * For a test of how app.close() ends streams: Fastify's own default (it closes only idle
 * connections) instead of startApp's forced close, so that nothing but the plugin ends a stream.
 */
export const fastifyDefaultClose: AppOptions = { forceCloseConnections: undefined }

/**
 * A Fastify instance with the plugin (heartbeat off unless `options` says otherwise) and what
 * `routes` adds, listening on 127.0.0.1, closed when the test ends.
 */
export function startApp (t: Teardown, options: FastifyConduitOptions = {}, routes: Routes = () => {}, fastifyOptions: AppOptions = {}): Started {
  return start(fastifyConduit, t, options, routes, fastifyOptions)
}

/** What startChannelApp takes besides its channel: the channel's options, other routes, Fastify's options. */
export interface ChannelAppOptions {
  channel?: ChannelOptions<undefined>
  routes?: Routes
  fastify?: AppOptions
}

/**
 * startApp with one channel, `name`, streamed by `GET path` (`reply.sse(channel)`), and what
 * `more.routes` adds; returns the channel with the app.
 */
export async function startChannelApp (t: Teardown, options: FastifyConduitOptions, path: string, name: string, more: ChannelAppOptions = {}): Promise<Awaited<Started> & { channel: Channel }> {
  let channel!: Channel
  const started = await startApp(t, options, (app) => {
    channel = app.sse.channel(name, more.channel)
    app.get(path, (request, reply) => reply.sse(channel))
    more.routes?.(app)
  }, more.fastify)
  return { ...started, channel }
}

/**
 * startApp with the plugin as a user gets it, the built package imported by name, for the
 * examples (which import it so too). Loaded on first use: only these tests need a build.
 */
export async function startPackageApp (t: Teardown, options: FastifyConduitOptions = {}, routes: Routes = () => {}, fastifyOptions: AppOptions = {}): Started {
  const { default: published } = await import('fastify-conduit')
  return start(published as unknown as Conduit, t, options, routes, fastifyOptions)
}

async function start (plugin: Conduit, t: Teardown, options: FastifyConduitOptions, routes: Routes, { before, ...fastifyOptions }: AppOptions): Started {
  // Clients that aborted may leave keep-alive sockets (undici keeps them for 4 s): close them
  // with the server instead of waiting.
  const app = Fastify({ forceCloseConnections: true, ...fastifyOptions } as FastifyServerOptions)
  t.teardown(() => app.close())
  await before?.(app)
  await app.register(plugin, { heartbeat: false, ...options })
  routes(app)
  const url = await listen(app)
  return { app, url, port: (app.server.address() as AddressInfo).port }
}

/** A port nothing listens on now (listened on, then closed). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A unique channel name per test, so tests sharing a bus (or a Redis) never meet. */
export function uniqueName (label: string): string {
  return `${label}-${Math.random().toString(36).slice(2, 10)}`
}
