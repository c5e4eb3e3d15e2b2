import type { TSchema } from '@sinclair/typebox'
import fastJsonStringify from 'fast-json-stringify'
import {
  InvalidEventDataError,
  InvalidSchemaError,
  UndeclaredEventError
} from '../errors.js'
import { assertMessage, formatEvent, headFields, stringifyData } from '../format/format.js'
import { DATA, eventField, fieldLines } from '../wire/format.js'
import type { SSEMessage } from '../wire/message.js'
import { compileCheck } from './check.js'
import type { CompiledCheck } from './check.js'
import { sharedReferences } from './shared.js'
import type { SharedReferences } from './shared.js'

/** `schema.sse`: event name -> TypeBox schema of that event's `data`. */
export type EventSchemas = Record<string, TSchema>

/** What is compiled once per event name: the check of its data, and what follows. */
interface CompiledEvent extends CompiledCheck {
  /** `event: name\n`, or `''` for `message`, the type EventSource gives events without one. */
  readonly prefix: string
  readonly serialize: (data: unknown) => string
}

/** Formats a message against a route's or channel's event schemas; throws coded errors. */
export type EventFormatter = (msg: SSEMessage) => string

/**
 * Compiles `schema.sse` once (at route registration): a TypeBox check and a fast-json-stringify
 * serializer per event name, and the precomputed `event:` line. The returned formatter then
 * does per event: one lookup, one compiled check, one compiled serialize, a few concatenations.
 *
 * `shared` are the shared schemas (`app.getSchemas()`) that event schemas may `$ref` by `$id`.
 *
 * @example
 * const format = compileRouteEvents({ token: Type.Object({ text: Type.String() }) })
 * format({ event: 'token', data: { text: 'Hi' } }) // 'event: token\ndata: {"text":"Hi"}\n\n'
 */
export function compileRouteEvents (schemas: EventSchemas, shared?: Record<string, unknown>): EventFormatter {
  if (typeof schemas !== 'object' || schemas === null || Array.isArray(schemas)) {
    throw new InvalidSchemaError('expected an object of event name -> schema')
  }
  const references = shared === undefined ? undefined : sharedReferences(schemas, shared)
  const table = new Map<string, CompiledEvent>()
  for (const name of Object.keys(schemas)) {
    table.set(name, compileEvent(name, schemas[name], references))
  }
  if (table.size === 0) throw new InvalidSchemaError('it declares no event')

  return function formatSchemaEvent (msg: SSEMessage): string {
    assertMessage(msg)
    const data = msg.data
    // Neither event nor data: a control message (id, retry, comment) that dispatches nothing.
    if (msg.event === undefined && data === undefined) return formatEvent(msg)
    const name = msg.event ?? 'message'
    const compiled = table.get(name)
    if (compiled === undefined) throw new UndeclaredEventError(String(name))
    if (!compiled.check(data)) {
      // Explain only on failure: the compiled check is cheap, the error walk is not.
      const { path, message } = compiled.explain(data)
      throw new InvalidEventDataError(name, path, message)
    }
    let frame = compiled.prefix
    if (msg.id !== undefined || msg.retry !== undefined || msg.comment !== undefined) {
      // The order of fields within a frame does not change what a client sees (§9.2.6).
      frame += headFields({ comment: msg.comment, id: msg.id, retry: msg.retry })
    }
    // fast-json-stringify writes `format: 'unsafe'` strings unescaped, and serializes what an
    // object's toJSON() returns without the check: its output may hold a raw CR or LF. Split it
    // as a string payload is split, so no payload can end its line and forge a field or event.
    return data === undefined ? frame + DATA + '\n\n' : frame + fieldLines(DATA, compiled.serialize(data)) + '\n'
  }
}

function compileEvent (name: string, schema: unknown, references: SharedReferences | undefined): CompiledEvent {
  if (name === '') throw new InvalidSchemaError('an event name is empty')
  let prefix: string
  try {
    prefix = name === 'message' ? '' : eventField(name)
  } catch {
    throw new InvalidSchemaError(`event name ${JSON.stringify(name)} contains CR or LF`)
  }
  if (typeof schema !== 'object' || schema === null) {
    throw new InvalidSchemaError(`the schema of event "${name}" is not a schema object`)
  }
  let compiled: CompiledCheck
  try {
    compiled = compileCheck(schema as TSchema, references?.references)
  } catch (err) {
    throw new InvalidSchemaError(`the schema of event "${name}" does not compile: ${(err as Error).message}`, { cause: err })
  }
  return {
    prefix,
    check: compiled.check,
    explain: compiled.explain,
    serialize: compileSerializer(schema as TSchema, references?.external)
  }
}

/**
 * fast-json-stringify is 2-5x faster than JSON.stringify on object schemas (npm run bench) and,
 * like Fastify's response serialization, leaves out properties the schema does not declare.
 * A schema it cannot build (TypeBox kinds with no JSON Schema form) falls back to JSON.
 */
function compileSerializer (schema: TSchema, external?: Record<string, unknown>): (data: unknown) => string {
  try {
    return fastJsonStringify(schema as unknown as Parameters<typeof fastJsonStringify>[0],
      external === undefined ? undefined : { schema: external as Record<string, Parameters<typeof fastJsonStringify>[0]> }) as (data: unknown) => string
  } catch {
    return stringifyData
  }
}
