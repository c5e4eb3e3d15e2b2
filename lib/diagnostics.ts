import { channel } from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'

// Observability through node:diagnostics_channel: the library publishes, applications (or an
// OpenTelemetry / Prometheus bridge) subscribe. Every publish is guarded by `hasSubscribers`,
// and a stream is observed (its bytes and events counted) only when it opens while someone
// subscribes to a stream channel: with no subscriber, a stream costs one `hasSubscribers`
// check at open and one `undefined` check per written batch.

/**
 * The names of the diagnostics channels fastify-conduit publishes on; subscribe with
 * `diagnostics_channel.subscribe(name, listener)`. Messages are described by the types of the
 * same names (`StreamOpenMessage`, …). Payloads (event data) are never in a message.
 */
export const diagnosticsChannels = {
  /** A stream opened ({@link StreamOpenMessage}). */
  streamOpen: 'fastify-conduit:stream:open',
  /** A stream's response is over ({@link StreamCloseMessage}). */
  streamClose: 'fastify-conduit:stream:close',
  /** An event was not written: it failed its schema or a wire rule ({@link InvalidEventMessage}). */
  invalidEvent: 'fastify-conduit:event:invalid',
  /** A channel subscriber fell more than `maxBufferedBytes` behind and was dropped ({@link SlowSubscriberMessage}). */
  slowSubscriber: 'fastify-conduit:subscriber:slow',
  /** A Last-Event-ID was older than the retained history, or unknown: events were missed ({@link ReplayGapMessage}). */
  replayGap: 'fastify-conduit:replay:gap',
  /** The bus failed to publish, subscribe or read ({@link BusErrorMessage}). */
  busError: 'fastify-conduit:bus:error'
} as const

const streamOpen = channel(diagnosticsChannels.streamOpen)
const streamClose = channel(diagnosticsChannels.streamClose)
const invalidEvent = channel(diagnosticsChannels.invalidEvent)
const slowSubscriber = channel(diagnosticsChannels.slowSubscriber)
const replayGap = channel(diagnosticsChannels.replayGap)
const busError = channel(diagnosticsChannels.busError)

/** Why a stream ended. */
export type StreamEndReason =
  /** The source ended (or the channel closed, or the attached source finished). */
  | 'end'
  /** The client went away. */
  | 'client'
  /** `app.close()` ended it. */
  | 'server'
  /** The source threw (logged). */
  | 'error'
  /** An invalid event ended it (`onInvalid: 'close'`). */
  | 'invalid'
  /** The server dropped the connection: a slow channel subscriber, or a client still connected after `closeGracePeriod`. */
  | 'aborted'
  /** An `onSend` hook's encoder could not be flushed per batch: answered with `FST_ERR_CONDUIT_UNFLUSHABLE_ENCODING`. */
  | 'refused'

/**
 * One stream, the same object in every message about it (key a `WeakMap` with it to keep a
 * span or a timer per stream).
 */
export interface StreamInfo {
  /** The request that opened it. */
  readonly request: FastifyRequest
  /** The route's URL pattern (`/chat/:id`), as Fastify's `routeOptions.url`. */
  readonly route: string | undefined
  /** The request method. */
  readonly method: string
  /** The request's Last-Event-ID (undefined when absent or too long). */
  readonly lastEventId: string | undefined
  /** The channel's name, when the stream streams a channel. */
  readonly channel: string | undefined
}

/** `fastify-conduit:stream:open`: published when `reply.sse` starts a stream (not for HEAD). */
export interface StreamOpenMessage {
  readonly stream: StreamInfo
}

/** `fastify-conduit:stream:close`: published once the stream's response is over. */
export interface StreamCloseMessage {
  readonly stream: StreamInfo
  /** Milliseconds from open to the end of the response. */
  readonly duration: number
  /** Events written (frames with data; heartbeats, comments and id-only frames are not events). */
  readonly events: number
  /** Bytes of event-stream text handed to the response (heartbeats included; before any compression). */
  readonly bytes: number
  /** Why it ended. */
  readonly reason: StreamEndReason
}

/** `fastify-conduit:event:invalid`: an event that was not written. */
export interface InvalidEventMessage {
  /** The stream, when it opened while a stream channel had subscribers; else undefined. */
  readonly stream: StreamInfo | undefined
  /** The coded error (`FST_ERR_CONDUIT_INVALID_DATA`, …); its message names the event and the schema path, never the payload. */
  readonly error: Error & { code?: string }
  /** What happened next: `'close'` ended the stream, `'skip'` dropped the event. */
  readonly policy: 'close' | 'skip'
}

/** `fastify-conduit:subscriber:slow`: a subscriber dropped for falling behind. */
export interface SlowSubscriberMessage {
  /** The channel's name. */
  readonly channel: string
  /** A stream (`reply.sse(channel)`) or an iterator (`channel.subscribe()`). */
  readonly subscriber: 'stream' | 'iterator'
  /** The limit it passed, in bytes. */
  readonly maxBufferedBytes: number
}

/** `fastify-conduit:replay:gap`: a subscriber's Last-Event-ID was older than the history, or unknown. */
export interface ReplayGapMessage {
  readonly channel: string
  readonly subscriber: 'stream' | 'iterator'
  /** The Last-Event-ID asked for. */
  readonly lastEventId: string | undefined
}

/** `fastify-conduit:bus:error`: the bus failed. */
export interface BusErrorMessage {
  /** What failed: publishing, subscribing (listening and replaying), or the bus's reading (Redis). */
  readonly operation: 'publish' | 'subscribe' | 'read'
  /** The channel's name, when one channel is concerned. */
  readonly channel: string | undefined
  readonly error: Error
}

/**
 * Counts one stream's bytes and events, and publishes its open and close. Made only when a
 * stream channel has subscribers as the stream opens.
 */
export class StreamObserver {
  readonly info: StreamInfo
  readonly #start = performance.now()
  #bytes = 0
  #events = 0
  #opened = false

  constructor (info: StreamInfo) {
    this.info = info
  }

  /** The source opened: the stream runs (one that failed to open is never announced, nor closed). */
  opened (): void {
    this.#opened = true
    if (streamOpen.hasSubscribers) streamOpen.publish({ stream: this.info } satisfies StreamOpenMessage)
  }

  /** A batch of whole frames went to the response (the stream pushes Buffers only). */
  wrote (chunk: Uint8Array): void {
    this.#bytes += chunk.byteLength
    this.#events += countBroadcastEvents(chunk)
  }

  /** The response is over. */
  closed (reason: StreamEndReason): void {
    if (!this.#opened || !streamClose.hasSubscribers) return
    streamClose.publish({
      stream: this.info,
      duration: performance.now() - this.#start,
      events: this.#events,
      bytes: this.#bytes,
      reason
    } satisfies StreamCloseMessage)
  }
}

/** An observer for a stream opening now, or undefined when no stream channel has subscribers. */
export function observeStream (info: () => StreamInfo): StreamObserver | undefined {
  if (!streamOpen.hasSubscribers && !streamClose.hasSubscribers && !invalidEvent.hasSubscribers) return undefined
  return new StreamObserver(info())
}

// A frame is everything up to a blank line; it is an event when one of its lines is a `data:`
// field (every frame fastify-conduit writes for an event has one; heartbeats, comments, and
// id- or retry-only frames have none). Batches always hold whole frames.
function countEvents (text: string): number {
  let events = 0
  let start = 0
  for (let end = text.indexOf('\n\n'); end !== -1; end = text.indexOf('\n\n', start)) {
    if (text.startsWith('data:', start)) events++
    else {
      const data = text.indexOf('\ndata:', start)
      if (data !== -1 && data < end) events++
    }
    start = end + 2
  }
  return events
}

// A channel writes the same Buffer to every subscriber in turn: counted once per batch (a
// stream's own batches are Buffers of their own, counted each).
let lastBroadcast: Uint8Array | undefined
let lastBroadcastEvents = 0
function countBroadcastEvents (bytes: Uint8Array): number {
  if (bytes !== lastBroadcast) {
    lastBroadcast = bytes
    lastBroadcastEvents = countEvents(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'))
  }
  return lastBroadcastEvents
}

export function publishInvalidEvent (observer: StreamObserver | undefined, error: Error, policy: 'close' | 'skip'): void {
  if (invalidEvent.hasSubscribers) invalidEvent.publish({ stream: observer?.info, error, policy } satisfies InvalidEventMessage)
}

export function publishSlowSubscriber (channelName: string, subscriber: 'stream' | 'iterator', maxBufferedBytes: number): void {
  if (slowSubscriber.hasSubscribers) slowSubscriber.publish({ channel: channelName, subscriber, maxBufferedBytes } satisfies SlowSubscriberMessage)
}

export function publishReplayGap (channelName: string, subscriber: 'stream' | 'iterator', lastEventId: string | undefined): void {
  if (replayGap.hasSubscribers) replayGap.publish({ channel: channelName, subscriber, lastEventId } satisfies ReplayGapMessage)
}

export function publishBusError (operation: 'publish' | 'subscribe' | 'read', channelName: string | undefined, error: unknown): void {
  if (busError.hasSubscribers) busError.publish({ operation, channel: channelName, error: error as Error } satisfies BusErrorMessage)
}
