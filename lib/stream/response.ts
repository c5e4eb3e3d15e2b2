import type { ServerResponse } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'

/**
 * What a stream is handed to write to: Fastify's `reply.raw`, an HTTP/1.1 `ServerResponse` or
 * an HTTP/2 compatibility `Http2ServerResponse`. Only their public API is used.
 */
export type ResponseTarget = ServerResponse | (Http2ServerResponse & { flushHeaders (): void })

/**
 * True when the response is over already (finished, or its connection gone): its `'close'`
 * event has fired and will not fire again. An HTTP/2 compatibility response has no `closed`
 * of its own; its stream does.
 */
export function isResponseClosed (response: ResponseTarget): boolean {
  return 'stream' in response ? response.stream.closed : response.closed
}

/** Resolves on the response's `'close'`: call it only while the response is not over yet. */
export function whenResponseClosed (response: ResponseTarget): Promise<void> {
  return new Promise((resolve) => { response.once('close', () => resolve()) })
}
