export { compileRouteEvents } from './compile.js'
export type { EventSchemas, EventFormatter } from './compile.js'
