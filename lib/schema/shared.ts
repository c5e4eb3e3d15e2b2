import { Kind } from '@sinclair/typebox'
import type { TSchema } from '@sinclair/typebox'
import { InvalidSchemaError } from '../errors.js'

// Shared schemas (Fastify's `addSchema`) for `schema.sse`: the ones a route's event schemas
// `$ref`, directly or through each other, as TypeBox's compiler and fast-json-stringify take
// them. Fastify keeps a deep copy of each added schema, and the copy has lost TypeBox's
// symbols (`[Kind]`), which TypeBox's compiler dispatches on: so the copies get their kinds
// back from their JSON Schema keywords here. A keyword TypeBox cannot check fails the route's
// registration rather than being ignored.

/** What a route's event schemas need of the shared schemas. */
export interface SharedReferences {
  /** For `TypeCompiler.Compile(schema, references)`: each with its `[Kind]`. */
  readonly references: TSchema[]
  /** For fast-json-stringify's `schema` option: `$id` -> the schema as Fastify keeps it. */
  readonly external: Record<string, unknown>
}

// Keywords that would change what is valid and that TypeBox's compiler does not check.
const UNCHECKED = ['oneOf', 'if', 'then', 'else', 'dependencies', 'dependentRequired', 'dependentSchemas',
  'propertyNames', 'prefixItems', 'unevaluatedItems', 'unevaluatedProperties', '$defs', 'definitions', '$dynamicRef']

// Keywords that apply to one JSON type only; without `type` they cannot be given a kind.
const TYPED = ['properties', 'patternProperties', 'additionalProperties', 'required', 'items', 'minLength',
  'maxLength', 'pattern', 'format', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf']

const KINDS: Record<string, string> = {
  string: 'String',
  number: 'Number',
  integer: 'Integer',
  boolean: 'Boolean',
  null: 'Null'
}

/**
 * The shared schemas that `schemas` refer to by `$id` (as `Type.Ref('Tick')` writes it),
 * followed through each other; `undefined` when they refer to none. A `$ref` that is not a
 * shared schema's `$id` is left for TypeBox to report.
 */
export function sharedReferences (schemas: Record<string, unknown>, shared: Record<string, unknown>): SharedReferences | undefined {
  const ids = new Set<string>()
  collectRefs(schemas, ids)
  const references: TSchema[] = []
  const external: Record<string, unknown> = {}
  // A Set iterates over what is added while iterating: the shared schemas' own references.
  for (const id of ids) {
    if (!Object.hasOwn(shared, id)) continue
    external[id] = shared[id]
    references.push(withKinds(shared[id], id))
    collectRefs(shared[id], ids)
  }
  return references.length === 0 ? undefined : { references, external }
}

function collectRefs (value: unknown, ids: Set<string>): void {
  if (typeof value !== 'object' || value === null) return
  if (Array.isArray(value)) {
    for (const item of value) collectRefs(item, ids)
    return
  }
  for (const [key, item] of Object.entries(value)) {
    if (key === '$ref' && typeof item === 'string') ids.add(item)
    // Values, not schemas: a `$ref` in them is data.
    else if (key !== 'const' && key !== 'enum' && key !== 'default' && key !== 'examples') collectRefs(item, ids)
  }
}

/** `schema` (JSON Schema, as TypeBox writes it) with the TypeBox kinds its keywords mean. */
function withKinds (schema: unknown, id: string): TSchema {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new InvalidSchemaError(`the shared schema "${id}" has a subschema that is not a schema object`)
  }
  const source = schema as Record<string, unknown>
  for (const keyword of UNCHECKED) {
    if (keyword in source) throw new InvalidSchemaError(`the shared schema "${id}" uses "${keyword}", which schema.sse cannot check`)
  }
  // A $ref's siblings are ignored, as in JSON Schema draft-07 (Fastify's default).
  const result = typeof source.$ref === 'string' ? kind({ $ref: source.$ref }, 'Ref') : applied(source, id)
  if (typeof source.$id === 'string') result.$id = source.$id
  return result
}

/** Each applicator is one part, and the type's keywords another; several must all hold. */
function applied (source: Record<string, unknown>, id: string): TSchema {
  const { const: value, enum: values, anyOf, allOf, not, $id, ...rest } = source
  const parts: TSchema[] = []
  if ('const' in source) parts.push(literal(value, id))
  if (values !== undefined) parts.push(kind({ anyOf: list(values, 'enum', id).map((item) => literal(item, id)) }, 'Union'))
  if (anyOf !== undefined) parts.push(kind({ anyOf: list(anyOf, 'anyOf', id).map((item) => withKinds(item, id)) }, 'Union'))
  if (allOf !== undefined) parts.push(kind({ allOf: list(allOf, 'allOf', id).map((item) => withKinds(item, id)) }, 'Intersect'))
  if (not !== undefined) parts.push(kind({ not: withKinds(not, id) }, 'Not'))
  if (rest.type !== undefined) parts.push(typed(rest, id))
  else if (TYPED.some((keyword) => keyword in rest)) throw new InvalidSchemaError(`the shared schema "${id}" has a subschema without "type"`)
  else if (parts.length === 0) parts.push(kind({}, 'Unknown'))
  return parts.length === 1 ? parts[0] : kind({ allOf: parts }, 'Intersect')
}

function typed (schema: Record<string, unknown>, id: string): TSchema {
  const type = schema.type
  if (Array.isArray(type)) return kind({ anyOf: type.map((one) => typed({ ...schema, type: one }, id)) }, 'Union')
  if (type === 'object') {
    const copy = { ...schema }
    if (isObject(schema.additionalProperties)) copy.additionalProperties = withKinds(schema.additionalProperties, id)
    if (schema.patternProperties !== undefined) {
      const patterns = Object.entries(schema.patternProperties as Record<string, unknown>)
      if (patterns.length !== 1 || schema.properties !== undefined) {
        throw new InvalidSchemaError(`the shared schema "${id}" mixes patternProperties with properties, or has several patterns`)
      }
      copy.patternProperties = { [patterns[0][0]]: withKinds(patterns[0][1], id) }
      return kind(copy, 'Record')
    }
    copy.properties = Object.fromEntries(Object.entries((schema.properties ?? {}) as Record<string, unknown>)
      .map(([key, property]) => [key, withKinds(property, id)]))
    return kind(copy, 'Object')
  }
  if (type === 'array') {
    const copy = { ...schema }
    if (isObject(schema.contains)) copy.contains = withKinds(schema.contains, id)
    if (Array.isArray(schema.items)) {
      // TypeBox checks a tuple's length against maxItems, as Type.Tuple writes it.
      if (schema.maxItems !== schema.items.length || schema.minItems !== schema.items.length) {
        throw new InvalidSchemaError(`the shared schema "${id}" has a tuple whose minItems and maxItems are not its length`)
      }
      copy.items = schema.items.map((item) => withKinds(item, id))
      return kind(copy, 'Tuple')
    }
    copy.items = schema.items === undefined ? kind({}, 'Unknown') : withKinds(schema.items, id)
    return kind(copy, 'Array')
  }
  const name = typeof type === 'string' && Object.hasOwn(KINDS, type) ? KINDS[type] : undefined
  if (name === undefined) throw new InvalidSchemaError(`the shared schema "${id}" has an unknown type ${JSON.stringify(type)}`)
  return kind({ ...schema }, name)
}

function literal (value: unknown, id: string): TSchema {
  if (value === null) return kind({ type: 'null' }, 'Null')
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    return kind({ const: value, type: typeof value }, 'Literal')
  }
  throw new InvalidSchemaError(`the shared schema "${id}" has a const or enum value that is not a string, number, boolean or null`)
}

function list (value: unknown, keyword: string, id: string): unknown[] {
  if (!Array.isArray(value)) throw new InvalidSchemaError(`the shared schema "${id}" has a "${keyword}" that is not an array`)
  return value
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

function kind (schema: Record<string, unknown>, name: string): TSchema {
  return Object.assign(schema, { [Kind]: name }) as TSchema
}
