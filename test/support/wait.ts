/** A promise with its resolve function, for sources that wait on the test. */
export function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

/**
 * True if `promise` settles within `ms`. The bound only turns a hang into a failed assertion:
 * every step waited on here takes about a millisecond.
 */
export async function within (promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>((resolve) => { timer = setTimeout(resolve, Math.max(ms, 0), false) })
  try {
    return await Promise.race([promise.then(() => true, () => true), late])
  } finally {
    clearTimeout(timer)
  }
}

/** True once `condition()` holds (checked every millisecond or so); false after `ms`. */
export async function eventually (condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() >= deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  return true
}

/** Takes `count` messages from a subscription (fewer if it ends first). */
export async function take<M> (subscription: AsyncIterator<M>, count: number): Promise<M[]> {
  const messages: M[] = []
  while (messages.length < count) {
    const step = await subscription.next()
    if (step.done === true) break
    messages.push(step.value)
  }
  return messages
}

/** Collects every item of `stream`, and the error that ended the iteration (if any). */
export async function drain<T> (stream: AsyncIterable<T>): Promise<{ events: T[], error?: any }> {
  const events: T[] = []
  try {
    for await (const event of stream) events.push(event)
  } catch (error) {
    return { events, error }
  }
  return { events }
}
