import type { FastifyBaseLogger } from 'fastify'
import { InvalidSourceError } from '../errors.js'
import { describe } from '../wire/guards.js'

/** What a source function receives. */
export interface SourceContext {
  /** Aborted when the client goes away or the server closes: pass it to what you await. */
  signal: AbortSignal
  /** The request's `Last-Event-ID` header (absent when missing or longer than 1024 characters). */
  lastEventId?: string
}

/** One pull-based view over every source kind `reply.sse` accepts. */
export interface OpenSource<T> {
  iterator: Iterator<T> | AsyncIterator<T>
  /** A sync iterator is pulled in a loop without awaiting every step. */
  sync: boolean
}

/**
 * Normalises a source: a function is called with the context first; then an async iterable
 * (async generators, object-mode Readables) or a sync iterable (arrays, generators). A string
 * is iterable too, but iterating it by character is never what the caller meant.
 */
export function openSource<T> (source: unknown, context: () => SourceContext): OpenSource<T> {
  // The context is made only for a source function: it holds the stream's AbortController.
  if (typeof source !== 'function') return iterate(source, source)
  return iterate(source(context()), source)
}

/**
 * The iterator of an iterable or async iterable `value`; throws `FST_ERR_CONDUIT_INVALID_SOURCE`
 * for anything else (`source` is what reply.sse was given, for the message).
 */
export function iterate<T> (value: unknown, source: unknown = value): OpenSource<T> {
  if (value !== null && typeof value === 'object') {
    if (typeof (value as AsyncIterable<T>)[Symbol.asyncIterator] === 'function') {
      return { iterator: (value as AsyncIterable<T>)[Symbol.asyncIterator](), sync: false }
    }
    if (typeof (value as Iterable<T>)[Symbol.iterator] === 'function') {
      return { iterator: (value as Iterable<T>)[Symbol.iterator](), sync: true }
    }
  }
  // An async function returns a Promise, not an async iterable: say so, it is the usual slip.
  const got = typeof (value as Partial<PromiseLike<unknown>> | null)?.then === 'function' ? 'a Promise (use an async generator function, `async function *`)' : describe(value)
  const what = typeof source === 'function' ? `a function that returned ${got}` : got
  throw new InvalidSourceError(`expected an iterable, async iterable, Readable, channel or a function returning one; got ${what}`)
}

/** Calls the iterator's `return()` (a generator's `finally` runs); what it throws is logged. */
export async function closeIterator (iterator: Iterator<unknown> | AsyncIterator<unknown>, log: FastifyBaseLogger): Promise<void> {
  try {
    await iterator.return?.()
  } catch (err) {
    log.error({ err }, 'fastify-conduit: closing the event source threw')
  }
}
