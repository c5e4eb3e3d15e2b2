import type { FastifyBaseLogger } from 'fastify'
import { InvalidChannelError } from '../errors.js'
import { kAttach } from '../stream/sink.js'
import type { AttachableSource, StreamSink } from '../stream/sink.js'
import type { SourceContext } from '../stream/source.js'
import { ID } from '../wire/format.js'
import { Channel, ChannelSelection, kAttachAt, kHead, kParts } from './channel.js'
import { decodeMergedId, encodePosition, mergeTag, SEPARATOR } from './merged-id.js'
import { GAP_FRAME } from './subscriber.js'
import type { Predicate } from './subscriber.js'
import type { ChannelMessage } from './types.js'

/** Channels one stream may carry: their positions keep its Last-Event-ID within 1024 characters. */
export const MAX_MERGED = 32

/** What `app.sse.merge()` takes: channels, and channels narrowed with `where()`. */
export type MergeableChannel = Channel<any> | ChannelSelection<any>

/** The messages of a list of channels: the union of each one's {@link ChannelMessage}. */
export type MergedMessage<Sources extends readonly MergeableChannel[]> =
  Sources[number] extends infer Source
    ? Source extends Channel<infer Events> | ChannelSelection<infer Events> ? ChannelMessage<Events> : never
    : never

declare const kMessage: unique symbol

interface Part {
  readonly channel: Channel<any>
  readonly filter: Predicate | undefined
}

/**
 * Several channels on one stream, made by `app.sse.merge([...])`: `reply.sse(merged)` streams
 * every channel's events as they come, each with its own event name, under one Last-Event-ID
 * that resumes each channel exactly where it stopped (on any instance sharing the bus). The id
 * is opaque; see the README ("Several channels on one connection").
 *
 * @example
 * app.get('/dashboard', (request, reply) =>
 *   reply.sse(app.sse.merge([news, alerts.where((message) => message.data.team === request.user.team)])))
 */
export class MergedChannels<Message = unknown> implements AttachableSource {
  /** The channels' names, in the order given. */
  readonly names: readonly string[]
  /** Carries the message type only (never set): what the channels deliver. */
  declare readonly [kMessage]?: Message
  readonly #parts: readonly Part[]
  readonly #tag: string

  constructor (sources: readonly unknown[]) {
    if (!Array.isArray(sources) || sources.length === 0 || sources.length > MAX_MERGED) {
      throw new InvalidChannelError(`merge() takes an array of 1 to ${MAX_MERGED} channels`)
    }
    const parts: Part[] = []
    const names: string[] = []
    for (const source of sources) {
      let part: Part
      if (source instanceof Channel) part = { channel: source, filter: undefined }
      else if (source instanceof ChannelSelection) part = source[kParts]()
      else throw new InvalidChannelError('merge() takes channels and channel.where() selections only')
      // Twice the same channel would deliver its events twice under one position.
      if (names.includes(part.channel.name)) throw new InvalidChannelError(`channel "${part.channel.name}" is given twice to merge()`)
      names.push(part.channel.name)
      parts.push(part)
    }
    this.names = names
    this.#parts = parts
    this.#tag = mergeTag(names)
  }

  /** `reply.sse(merged)`: each channel from its position in the Last-Event-ID, then live. */
  [kAttach] (sink: StreamSink): Promise<void> {
    return new MergedStream(sink, this.#parts, this.#tag).run()
  }
}

/** One stream carrying several channels: one child sink per channel, rewriting ids. */
class MergedStream {
  readonly #sink: StreamSink
  readonly #parts: readonly Part[]
  readonly #tag: string
  readonly #children: ChildSink[] = []
  /** Each channel's position, encoded, as the client would resume from them now. */
  #positions: string[] = []
  /** The same, as the stream began (see {@link arrived}). */
  #initial: readonly string[] = []
  #gapWritten = false
  /** The stream's one wait for room, shared by the channels' replays (a stream has one waiter). */
  #drained: Promise<void> | undefined

  constructor (sink: StreamSink, parts: readonly Part[], tag: string) {
    this.#sink = sink
    this.#parts = parts
    this.#tag = tag
  }

  get sink (): StreamSink {
    return this.#sink
  }

  async run (): Promise<void> {
    const sink = this.#sink
    const parts = this.#parts
    const lastEventId = sink.lastEventId
    // Where each channel starts: a string after that id, undefined from its first event (the
    // bus's START: after a `: gap` if some were dropped), null live (a bus that cannot say
    // where a channel stands).
    let starts: Array<string | undefined | null>
    // Each channel's newest id as the stream begins: where it starts on a first connection;
    // on a resume, its position once its replay wrote nothing (see arrived()).
    const heads = await Promise.all(parts.map(({ channel }) => channel[kHead]().catch(() => null)))
    if (lastEventId === undefined) {
      // A first connection: each channel from its newest id now, so that a client that drops
      // before a channel's first event still resumes it exactly.
      starts = heads
    } else {
      const positions = decodeMergedId(lastEventId, this.#tag, parts.length)
      // Not an id of these channels: every channel reads it as an unknown id (what is
      // retained is replayed, after one `: gap` frame), as a single channel does.
      starts = positions ?? parts.map(() => '')
    }
    this.#positions = starts.map((start) => encodePosition(start === '' || start === null ? undefined : start))
    this.#initial = [...this.#positions]
    for (let i = 0; i < parts.length; i++) this.#children.push(new ChildSink(this, i))
    sink.onEnd(() => {
      for (const child of this.#children) child.end()
    })
    await Promise.all(parts.map(({ channel, filter }, i) => {
      const start = starts[i]
      const arrived = lastEventId === undefined ? undefined : () => { this.arrived(i, heads[i]) }
      return channel[kAttachAt](this.#children[i], filter, start ?? undefined, start === undefined, arrived)
    }))
  }

  /**
   * A resumed channel replayed what followed its position and is live. If that wrote nothing
   * (nothing followed, or nothing `where()` selected; a position the bus no longer knows
   * included), its position becomes its head read before the replay: whatever came after the
   * head was in the replay or comes live, so nothing is skipped. An empty channel's position
   * is then as of this connection rather than of the stream's first (a bus tells a history
   * dropped whole from one that never began by when the channel was last seen empty: see the
   * README), and the next event of any channel carries it.
   */
  arrived (index: number, head: string | undefined | null): void {
    if (this.#sink.ended || head == null || this.#positions[index] !== this.#initial[index]) return
    this.#positions[index] = encodePosition(head)
  }

  /** Resolves once the stream takes more: one wait on the stream, whichever channels wait. */
  drained (): Promise<void> {
    this.#drained ??= this.#sink.drained().finally(() => { this.#drained = undefined })
    return this.#drained
  }

  /**
   * Channel `index` wrote frames (parsed once per batch, see {@link parseFrames}): each goes out
   * with the stream's id in place of the channel's. The body is copied, never serialized again;
   * the id's other positions are joined once per call, not per frame.
   */
  write (index: number, frames: readonly ParsedFrame[]): boolean {
    const positions = this.#positions
    let head = ID + this.#tag
    for (let i = 0; i < index; i++) head += SEPARATOR + positions[i]
    head += SEPARATOR
    let tail = ''
    for (let i = index + 1; i < positions.length; i++) tail += SEPARATOR + positions[i]
    let out = ''
    for (const { position, rest } of frames) {
      if (position !== undefined) {
        positions[index] = position
        out += head + position + tail + rest
      } else if (rest !== GAP_FRAME || !this.#gapWritten) {
        // One `: gap` for the stream, however many of its channels missed events.
        this.#gapWritten ||= rest === GAP_FRAME
        out += rest
      }
    }
    return out === '' ? this.#sink.writable : this.#sink.writeFrame(out)
  }
}

/** A frame a channel wrote: its position (encoded; none for a comment) and what follows its `id:` line. */
interface ParsedFrame {
  readonly position: string | undefined
  readonly rest: string
}

/**
 * A channel's broadcast Buffer, parsed once for every merged stream it reaches (they all get
 * the same Buffer object): its frames, each position encoded once.
 */
const parsedBatches = new WeakMap<Uint8Array, readonly ParsedFrame[]>()

function parseBatch (bytes: Uint8Array): readonly ParsedFrame[] {
  let frames = parsedBatches.get(bytes)
  if (frames === undefined) {
    frames = parseFrames(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString())
    parsedBatches.set(bytes, frames)
  }
  return frames
}

/**
 * Frames a channel writes one by one (replay, and the first batches of a subscriber settling
 * after it) are the same string for every merged stream of the channel: parsed once, while
 * recent. Cleared when full, so it holds at most this many.
 */
const parsedFrames = new Map<string, readonly ParsedFrame[]>()
const PARSED_FRAMES = 1024

function parseFrame (frame: string): readonly ParsedFrame[] {
  let frames = parsedFrames.get(frame)
  if (frames === undefined) {
    frames = parseFrames(frame)
    if (parsedFrames.size === PARSED_FRAMES) parsedFrames.clear()
    parsedFrames.set(frame, frames)
  }
  return frames
}

/** Frames as a channel writes them: `id:` line first (then its body, to the blank line), or a comment frame. */
function parseFrames (text: string): ParsedFrame[] {
  const frames: ParsedFrame[] = []
  let at = 0
  while (at < text.length) {
    const end = text.indexOf('\n\n', at) + 2
    if (text.startsWith(ID, at)) {
      const idEnd = text.indexOf('\n', at)
      frames.push({ position: encodePosition(text.slice(at + ID.length, idEnd)), rest: text.slice(idEnd, end) })
    } else {
      frames.push({ position: undefined, rest: text.slice(at, end) })
    }
    at = end
  }
  return frames
}

/** What one channel of a merged stream writes to: the stream, seen as if it were that channel's alone. */
class ChildSink implements StreamSink {
  readonly #merged: MergedStream
  readonly #index: number
  #onEnd: (() => void) | undefined

  constructor (merged: MergedStream, index: number) {
    this.#merged = merged
    this.#index = index
  }

  // The stream's own, as StreamSink requires; a channel is given its position instead of
  // reading either.
  /* c8 ignore next 3 */
  get context (): SourceContext {
    return this.#merged.sink.context
  }

  /* c8 ignore next 3 */
  get lastEventId (): string | undefined {
    return this.#merged.sink.lastEventId
  }

  get log (): FastifyBaseLogger {
    return this.#merged.sink.log
  }

  get ended (): boolean {
    return this.#merged.sink.ended
  }

  get queued (): number {
    return this.#merged.sink.queued
  }

  get writable (): boolean {
    return this.#merged.sink.writable
  }

  // Never called once the stream ended: a channel checks `ended` first, in the same step.
  onEnd (listener: () => void): void {
    this.#onEnd = listener
  }

  /** The stream ended. */
  end (): void {
    const listener = this.#onEnd
    this.#onEnd = undefined
    listener?.()
  }

  drained (): Promise<void> {
    return this.#merged.drained()
  }

  writeFrame (frame: string): boolean {
    return this.#merged.write(this.#index, parseFrame(frame))
  }

  writeBytes (bytes: Uint8Array): boolean {
    return this.#merged.write(this.#index, parseBatch(bytes))
  }

  // A channel that ends its subscriber (closed, or the bus lost live events) ends the stream:
  // the client comes back with its Last-Event-ID and every channel resumes where it stopped.
  stop (): void {
    this.#merged.sink.stop()
  }

  abort (): void {
    this.#merged.sink.abort()
  }
}
