import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { Errors } from '@sinclair/typebox/errors'
import type { ValueError } from '@sinclair/typebox/errors'
// Check alone, not the Value namespace: that one brings every value function (Cast, Create,
// Convert, Transform...) into a browser bundle, about a fifth of its size.
import { Check as checkValue } from '@sinclair/typebox/value'

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
    return { check: (value) => checkValue(schema, value), explain: (value) => Errors(schema, value).First() }
  }
}
