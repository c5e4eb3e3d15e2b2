// The test helpers, one file per job: apps, raw frames, parsed events, logs, bounded waits,
// HTTP/1.1 and HTTP/2 clients, and a plain event-stream server for the client tests.
export * from './app.js'
export * from './frames.js'
export * from './events.js'
export * from './logs.js'
export * from './wait.js'
export * from './clients.js'
export * from './event-server.js'
