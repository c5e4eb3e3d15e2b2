import type { Static, TSchema } from '@sinclair/typebox'
import { compileCheck } from './check.js'
import type { Check } from './check.js'
import { ClientInvalidDataError, ClientOptionError, ClientUndeclaredEventError } from './errors.js'

/** Event name -> TypeBox schema of that event's `data`, as in the route's `schema.sse`. */
export type EventSchemas = Record<string, TSchema>

/** One event as `connect` yields it. */
export interface ConduitEvent<Name extends string = string, Data = string> {
  /** The event type; `'message'` for frames without an `event:` field. */
  event: Name
  /**
   * The data: the `data:` lines joined with LF. With `events`, the JSON they hold, checked
   * against the event's schema (an event sent without data gives `undefined`).
   */
  data: Data
  /**
   * The last event ID after this event: its own `id`, or the latest one before it (ids
   * persist, as EventSource's `lastEventId` does); `''` when the server has sent none.
   */
  id: string
  /** The reconnection time in milliseconds, when this event's frame set one with `retry:`. */
  retry?: number
}

/** The events of a stream read with `events`: a union discriminated by `event`. */
export type TypedEvent<Schemas extends EventSchemas> = {
  [Name in keyof Schemas & string]: ConduitEvent<Name, Static<Schemas[Name]>>
}[keyof Schemas & string]

/** Compiles each schema once; the returned function parses and checks one event's data. */
export function compileEvents (events: EventSchemas): (event: string, data: string) => unknown {
  const checks = new Map<string, Check>()
  for (const name of Object.keys(events)) checks.set(name, compileEventCheck(name, events[name]))
  return function decode (event: string, data: string): unknown {
    const check = checks.get(event)
    if (check === undefined) throw new ClientUndeclaredEventError(event)
    // A fastify-conduit server writes an event without data as one empty `data:` line.
    let value: unknown
    if (data !== '') {
      try {
        value = JSON.parse(data)
      } catch {
        // Not the parser's message: it quotes the payload.
        throw new ClientInvalidDataError(event, '', 'data is not JSON')
      }
    }
    if (!check.check(value)) {
      // Explain only on failure: the compiled check is cheap, the error walk is not.
      const first = check.explain(value)
      /* c8 ignore next -- a failed check always has a first error; the fallback guards TypeBox */
      throw new ClientInvalidDataError(event, first?.path ?? '', first?.message ?? 'invalid')
    }
    return value
  }
}

function compileEventCheck (name: string, schema: unknown): Check {
  if (typeof schema !== 'object' || schema === null) {
    throw new ClientOptionError(`events.${name}`, 'must be a TypeBox schema')
  }
  try {
    return compileCheck(schema as TSchema)
  } catch (err) {
    throw new ClientOptionError(`events.${name}`, 'is not a schema TypeBox can compile', { cause: err })
  }
}
