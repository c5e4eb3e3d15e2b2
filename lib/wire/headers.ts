// The response headers of an event stream. `X-Accel-Buffering: no` stops nginx from buffering
// the stream; `no-cache` keeps proxies and browsers from serving a stale stream; `no-transform`
// asks proxies that would compress or otherwise rewrite the body (and so buffer it) to pass it
// through as it comes. HTTP/2 forbids connection-specific headers such as `Connection`.
export const HTTP2_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no'
}
export const HTTP1_HEADERS: Readonly<Record<string, string>> = { ...HTTP2_HEADERS, connection: 'keep-alive' }
