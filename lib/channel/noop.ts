/**
 * Does nothing: for a callback that must be given (a rejection marked handled with
 * `promise.catch(noop)`, a `stop` with nothing to stop). Shared by the buses and the channel;
 * `redis` may import it from here, `channel` never imports `redis`.
 */
export function noop (): void {}
