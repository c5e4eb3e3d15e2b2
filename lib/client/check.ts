import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { ValueError } from '@sinclair/typebox/errors'
import { Value } from '@sinclair/typebox/value'

/** A schema's check, compiled once, and its explanation, to walk only after a failed check. */
export interface Check {
  check: (value: unknown) => boolean
  explain: (value: unknown) => ValueError | undefined
}

/**
 * Compiles `schema` once; other compile errors are thrown. A Content-Security-Policy without
 * 'unsafe-eval' forbids the compiler's `new Function`: the checks then walk the schema with
 * TypeBox's Value instead, slower but the same answers.
 */
export function compileCheck (schema: TSchema): Check {
  try {
    const compiled = TypeCompiler.Compile(schema)
    return { check: (value) => compiled.Check(value), explain: (value) => compiled.Errors(value).First() }
  } catch (err) {
    if (!(err instanceof EvalError)) throw err
    return { check: (value) => Value.Check(schema, value), explain: (value) => Value.Errors(schema, value).First() }
  }
}
