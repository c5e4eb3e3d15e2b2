// tap coverage map: every test is measured against lib/ only (so the package test, which
// loads the built dist/, does not count dist/ as code under test). Paths are relative to
// the project root, as tap expects.
import { readdirSync } from 'node:fs'

const lib = readdirSync('lib', { recursive: true })
  .filter((file) => file.endsWith('.ts'))
  .map((file) => `lib/${file}`)

export default () => lib
