import type { TSchema } from '@sinclair/typebox'
import type { EventSchemas } from './schema/compile.js'

/** The media type of every event stream (WHATWG HTML §9.2.5). */
export const EVENT_STREAM = 'text/event-stream'

/** The part of a route's `schema` read and written here. */
interface RouteSchema {
  sse: EventSchemas
  response?: Record<string, unknown>
  [key: string]: unknown
}

/**
 * The OpenAPI 3.2 Media Type Object of an event stream whose events are `schemas`, as the
 * specification describes `text/event-stream` ("Special Considerations for Server-Sent Events"):
 * `itemSchema` is one parsed event, an object with the fields `event`, `data`, `id` and
 * `retry`, and `oneOf` names each declared event by a `const` `event` with its `data`, a string
 * whose `contentMediaType` is `application/json` and whose `contentSchema` is the event's
 * TypeBox schema (data is always JSON on a route with `schema.sse`).
 *
 * `schema` describes the whole body and is left open (`{}` with a description): OpenAPI 3.2
 * models a sequential media type's whole content apart from its items, and Fastify requires a
 * `schema` in every `content` entry. It is never used on the wire: an event stream is not
 * serialized by Fastify.
 */
export function eventStreamMediaType (schemas: EventSchemas): { schema: Record<string, unknown>, itemSchema: Record<string, unknown> } {
  const names = Object.keys(schemas)
  const events = names.map((name) => eventItem(name, schemas[name]))
  return {
    schema: {
      description: `Server-Sent Events (text/event-stream). Events: ${names.join(', ')}; each is described by itemSchema.`
    },
    itemSchema: {
      type: 'object',
      properties: {
        event: { type: 'string', description: "The event type; 'message' when the stream sends none." },
        data: { type: 'string' },
        id: { type: 'string', description: 'The event ID: sent back as Last-Event-ID when the client reconnects.' },
        retry: { type: 'integer', minimum: 0, description: 'Reconnection time, in milliseconds.' }
      },
      required: ['data'],
      oneOf: events
    }
  }
}

function eventItem (name: string, schema: TSchema): Record<string, unknown> {
  return {
    title: name,
    properties: {
      event: { const: name },
      data: { type: 'string', contentMediaType: 'application/json', contentSchema: schema }
    },
    // An event without an `event:` field is a 'message' (WHATWG HTML §9.2.6, "dispatch the event").
    required: name === 'message' ? ['data'] : ['event', 'data']
  }
}

/**
 * The route schema to document an event stream: `schema` with a `200` response whose
 * `text/event-stream` content describes `schema.sse`, which @fastify/swagger copies into the
 * OpenAPI document. A `200` response the route already declares for `text/event-stream`, or
 * without `content` (one schema for every media type), is the application's and is kept: the
 * schema is returned unchanged. The route's schema object is never modified (it may be shared
 * by several routes): a changed copy is returned.
 */
export function documentEventStream (schema: RouteSchema): RouteSchema {
  const events = schema.sse
  const responses = schema.response ?? {}
  const declared = responses['200'] as { content?: Record<string, unknown> } | undefined
  if (declared !== undefined && (declared.content === undefined || EVENT_STREAM in declared.content)) return schema
  const response = {
    ...declared,
    description: (declared as { description?: string } | undefined)?.description ?? 'An event stream',
    content: { ...declared?.content, [EVENT_STREAM]: eventStreamMediaType(events) }
  }
  return { ...schema, response: { ...responses, 200: response } }
}

/** An OpenAPI document, as far as {@link openapiEventStreamFallback} reads it. */
export interface OpenAPIDocument {
  openapi?: string
  paths?: Record<string, Record<string, unknown> | undefined>
  [key: string]: unknown
}

/**
 * For OpenAPI 3.0 and 3.1 documents, which have no `itemSchema`: rewrites every
 * `text/event-stream` response that has one so that its `schema` is the item schema (one
 * event), the convention tools for those versions follow; in 3.0, whose Schema Object has no
 * `const`, `contentMediaType` or `contentSchema`, those become `enum: [value]`,
 * `x-contentMediaType` and `x-contentSchema`. A 3.2 document is returned as it is. Pass it as
 * @fastify/swagger's `transformObject` option. It modifies the document it is given and
 * returns it.
 *
 * @example
 * await app.register(fastifySwagger, { openapi: { info }, transformObject: openapiEventStreamFallback })
 */
export function openapiEventStreamFallback<OpenAPI extends object, Swagger extends object> (document: { openapiObject: OpenAPI } | { swaggerObject: Swagger }): OpenAPI | Swagger {
  // A Swagger 2.0 document (@fastify/swagger's `swagger` mode) has no content types to rewrite.
  if (!('openapiObject' in document)) return document.swaggerObject
  const openapiObject = document.openapiObject as OpenAPIDocument
  const version = openapiObject.openapi ?? '3.0.3'
  if (!version.startsWith('3.0') && !version.startsWith('3.1')) return document.openapiObject
  const v30 = version.startsWith('3.0')
  for (const item of Object.values(openapiObject.paths ?? {})) {
    for (const operation of Object.values(item ?? {})) {
      const responses = (operation as { responses?: Record<string, { content?: Record<string, Record<string, unknown>> }> } | undefined)?.responses
      for (const response of Object.values(responses ?? {})) {
        const media = response.content?.[EVENT_STREAM]
        if (media?.itemSchema === undefined) continue
        media.schema = v30 ? toOpenapi30(media.itemSchema) : media.itemSchema
        delete media.itemSchema
      }
    }
  }
  return document.openapiObject
}

function toOpenapi30 (schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toOpenapi30)
  if (typeof schema !== 'object' || schema === null) return schema
  const converted: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'const') converted.enum = [value]
    else if (key === 'contentMediaType' || key === 'contentSchema') converted[`x-${key}`] = toOpenapi30(value)
    else converted[key] = toOpenapi30(value)
  }
  return converted
}
