import type { Redis } from 'ioredis'
import { MissingDependencyError } from '../errors.js'

/**
 * Loads ioredis on first use. It is an optional peer dependency: only applications that use
 * `fastify-conduit/redis` install it, and importing `fastify-conduit` never touches it.
 */
export async function loadIoredis (specifier = 'ioredis'): Promise<typeof Redis> {
  try {
    const module = await import(specifier)
    // ESM sees the CommonJS module.exports (the Redis class) as `default`; CommonJS interop
    // gives the module whose `default` is the same class.
    return module.default
  } catch (err) {
    throw new MissingDependencyError('fastify-conduit/redis', specifier, { cause: err })
  }
}
