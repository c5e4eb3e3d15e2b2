import { request } from 'node:http'
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Readable } from 'node:stream'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'

/**
 * What the test kit needs of a Fastify instance: `inject`, and the server's address. Any
 * instance fits, whatever its type provider or logger.
 */
export interface TestableApp {
  inject (options: InjectOptions): Promise<LightMyRequestResponse>
  readonly server: { address (): AddressInfo | string | null, readonly listening: boolean }
  readonly initialConfig: { readonly http2?: boolean, readonly https?: unknown }
}

/** One request, as either transport makes it. */
export interface RequestSpec {
  method: string
  /** Path and query string. */
  path: string
  headers: Record<string, string>
  body: string | undefined
}

/** An answered request: its head, its body as it arrives, and how to hang up. */
export interface OpenedResponse {
  statusCode: number
  headers: IncomingHttpHeaders
  body: Readable
  /** Disconnects as a client going away does; resolves once the client side is closed. */
  hangUp: () => Promise<void>
}

/** True when `app` listens on a plain HTTP/1.1 server that `node:http` can reach. */
export function canUseHttp (app: TestableApp): boolean {
  return app.server.listening && app.initialConfig.http2 !== true && !app.initialConfig.https && typeof app.server.address() === 'object'
}

/**
 * Over a real connection (its own socket, no agent: hanging up closes it, and the server sees
 * the client go away). A wildcard address is reached on loopback.
 */
export function openHttp (app: TestableApp, spec: RequestSpec): Promise<OpenedResponse> {
  const { address, family, port } = app.server.address() as AddressInfo
  const ipv6 = family === 'IPv6'
  let host = address
  if (address === '0.0.0.0') host = '127.0.0.1'
  else if (address === '::') host = '::1'
  return new Promise((resolve, reject) => {
    const req = request({ host, family: ipv6 ? 6 : 4, port, path: spec.path, method: spec.method, headers: spec.headers, agent: false }, (res) => {
      resolve({
        statusCode: res.statusCode as number,
        headers: res.headers,
        body: res,
        hangUp: () => new Promise((resolve) => {
          if (res.socket === null || res.socket.destroyed) {
            resolve()
            return
          }
          res.socket.once('close', () => resolve())
          res.destroy()
        })
      })
    })
    req.once('error', reject)
    req.end(spec.body)
  })
}

/**
 * With `app.inject`, its body streamed as the server writes it (`payloadAsStream`). Hanging up
 * destroys the injected response, which the server sees as a client gone away.
 */
export async function openInject (app: TestableApp, spec: RequestSpec): Promise<OpenedResponse> {
  const response = await app.inject({ method: spec.method as 'GET', url: spec.path, headers: spec.headers, payload: spec.body, payloadAsStream: true })
  const raw = response.raw.res as ServerResponse
  const body = response.stream()
  return {
    statusCode: response.statusCode,
    headers: response.headers as IncomingHttpHeaders,
    body,
    hangUp: () => new Promise((resolve) => {
      if (raw.destroyed) {
        resolve()
        return
      }
      raw.once('close', () => resolve())
      raw.destroy()
      body.destroy()
    })
  }
}
