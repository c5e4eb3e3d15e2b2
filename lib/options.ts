import { Kind, Type, TypeRegistry } from '@sinclair/typebox'
import type { SchemaOptions, Static, TInteger, TLiteral, TObject, TProperties, TSchema, TUnion, TUnsafe } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { ValueError } from '@sinclair/typebox/value'
import { InvalidOptionError } from './errors.js'
import { compileCheck } from './schema/check.js'

// Every options object (the plugin's, reply.sse's, a channel's, memoryBus's, redisBus's) is
// described once as a TypeBox schema, its type is Static<> of it, and it is checked by the
// compiled schema. Each option's schema carries `errorMessage`: what a wrong value is told,
// as `option "<name>" <errorMessage>`.

/** Events kept for replay (by a bus, or by one channel): a positive integer. */
export function History (options: SchemaOptions = {}): TInteger {
  return Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, errorMessage: 'must be a positive integer', ...options })
}

/** Bytes a channel subscriber may have waiting (the plugin's, or one channel's). */
export function MaxBufferedBytes (options: SchemaOptions = {}): TInteger {
  return Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, errorMessage: 'must be a positive integer of bytes', ...options })
}

/**
 * How long a bus keeps a channel's history after its last publish: milliseconds, or `false`
 * to keep it for good (a bus's `ttl`).
 */
export function HistoryTtl (options: SchemaOptions = {}): TUnion<[TInteger, TLiteral<false>]> {
  return Type.Union([Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), Type.Literal(false)],
    { errorMessage: 'must be a positive integer of milliseconds or false', ...options })
}

/** A non-negative integer of milliseconds (a delay; `0` is allowed). */
export function Milliseconds (options: SchemaOptions = {}): TInteger {
  return Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, errorMessage: 'must be a non-negative integer of milliseconds', ...options })
}

const IMPLEMENTS = 'FastifyConduit/Implements'

interface ImplementsSchema {
  readonly methods: readonly string[]
  readonly properties: Record<string, TSchema>
}

// A Bus, an ioredis client: objects known by what they do. TypeBox's Object explains a failure
// by own properties only, and these have their methods on a prototype; so they are a kind of
// their own, whose check and explanation agree.
TypeRegistry.Set<ImplementsSchema>(IMPLEMENTS, (schema, value) => {
  if (typeof value !== 'object' || value === null) return false
  const object = value as Record<string, unknown>
  return schema.methods.every((method) => typeof object[method] === 'function') &&
    Object.keys(schema.properties).every((key) => Value.Check(schema.properties[key], object[key]))
})

/**
 * An object (a class instance, say) with these methods and these properties, own or
 * inherited; typed as `T`, which describes it better than a schema could.
 */
export function Implements<T> (methods: readonly string[], properties: TProperties, options: SchemaOptions): TUnsafe<T> {
  return Type.Unsafe<T>({ ...options, [Kind]: IMPLEMENTS, methods, properties })
}

/**
 * Compiles the schema of an options object once, and returns its check: the options, typed,
 * or an InvalidOptionError naming the first option that is wrong (`name` when the options are
 * not an object at all). Only the check runs on good options: they are explained on failure.
 */
export function compileOptions<T extends TObject> (name: string, schema: T): (options: unknown) => Static<T> {
  const { check, explain } = compileCheck(schema)
  return function checkOptions (options) {
    if (check(options)) return options as Static<T>
    // The path is a JSON Pointer whose first segment is the option (our names need no escapes).
    const path = explain(options).path
    if (path === '') throw new InvalidOptionError(name, 'must be an object')
    // A nested option (`resume.ttl`) is named by its dotted path and told its own message.
    const [key, inner] = path.slice(1).split('/')
    const option = schema.properties[key]
    // An option that is a value or an object (`compress: true | { level }`) fails as a whole;
    // an object given is explained by the object's own schema, so that a wrong
    // `compress.level` is named as such.
    const value = (options as Record<string, unknown>)[key]
    const member = inner === undefined ? objectMember(option, value) : undefined
    const within = member === undefined ? inner : (Value.Errors(member, value).First() as ValueError).path.split('/')[1]
    // (A record's entries, `headers/x-name`, are named by the record.)
    const nested = within === undefined ? undefined : ((member ?? option) as Partial<TObject>).properties?.[within]
    if (nested === undefined) throw new InvalidOptionError(key, String(option.errorMessage))
    throw new InvalidOptionError(`${key}.${within}`, String(nested.errorMessage))
  }
}

/** The object schema among a union's members, when `value` is an object; else undefined. */
function objectMember (option: TSchema, value: unknown): TObject | undefined {
  if (typeof value !== 'object' || value === null || !Array.isArray(option.anyOf)) return undefined
  return (option.anyOf as TSchema[]).find((member): member is TObject => member.type === 'object')
}
