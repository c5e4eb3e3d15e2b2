/**
 * One server-sent event as the application describes it.
 *
 * - `data`: a string is written verbatim (split into `data:` lines); anything else is JSON.
 *   With a schema it is always JSON, produced by the serializer compiled from that schema.
 * - `event`: the event type; `'message'` when absent.
 * - `id`: moves the client's Last-Event-ID; `0` is written, not dropped.
 * - `retry`: the client's reconnection delay in milliseconds.
 * - `comment`: a comment frame (`: text`), which clients ignore.
 *
 * @example
 * const msg: SSEMessage = { event: 'token', id: 1, data: { text: 'Hello' } }
 */
export interface SSEMessage<Event extends string = string, Data = unknown> {
  event?: Event
  data?: Data
  id?: string | number
  retry?: number
  comment?: string
}
