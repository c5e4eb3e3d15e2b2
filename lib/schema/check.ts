import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

/** A compiled TypeBox check, and why a value failed it. */
export interface CompiledCheck {
  readonly check: (value: unknown) => boolean
  /** The first reason `value` fails: call it only after `check` returned false. */
  readonly explain: (value: unknown) => { path: string, message: string }
}

/**
 * Compiles `schema` once. Checking is then one call of generated code; explaining walks the
 * schema again, which is slow, so it is left for the failures (compile, check fast, explain
 * only on failure, as TypeBox's own compiler is meant to be used).
 */
export function compileCheck (schema: TSchema, references?: TSchema[]): CompiledCheck {
  const checker = TypeCompiler.Compile(schema, references)
  return {
    check: (value) => checker.Check(value),
    explain: (value) => {
      const first = checker.Errors(value).First()
      /* c8 ignore next -- a failed Check always has a first error; the fallback guards TypeBox */
      return first === undefined ? { path: '', message: 'invalid' } : { path: first.path, message: first.message }
    }
  }
}
