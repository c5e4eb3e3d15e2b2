// A stand-in for a language model, so that the chat examples run offline and answer the same
// way every time: it picks a canned answer by keyword and splits it into tokens. Replace
// `answer()` with a call to your model; the streaming code around it stays the same.
import { setTimeout as sleep } from 'node:timers/promises'

const ANSWERS: Array<[RegExp, string]> = [
  [/\b(hi|hello|hey)\b/i,
    'Hello! I am a stand-in model that streams its answer token by token over Server-Sent Events. Ask me about SSE, reconnection or fastify-conduit.'],
  [/reconnect|restart|resume|last-event-id/i,
    'When the connection drops, the browser reconnects by itself and sends the id of the last event it saw in the Last-Event-ID header. The server reads it from lastEventId and continues right after it, so nothing is lost and nothing is repeated.'],
  [/websocket/i,
    'WebSockets are two-way; Server-Sent Events go one way, from server to client, over plain HTTP. For streaming tokens, progress and notifications one way is all you need, and you keep HTTP caching, auth, proxies and automatic reconnection.'],
  [/sse|server-sent|event/i,
    'Server-Sent Events are a text stream over one HTTP response: each event has a type, optional id and data lines. fastify-conduit checks every event against its TypeBox schema and serializes it with a compiled serializer before it reaches the wire.']
]

const FALLBACK = 'I am a canned model running inside this demo, so I cannot really think about that. What I can do is stream this answer to you one token at a time, each as its own event, and resume it if the connection drops.'

/**
 * The tokens of the answer to `prompt`: words with their leading space, as OpenAI-style
 * models emit them, so that joining the tokens gives back the answer.
 */
export function answer (prompt: string): string[] {
  const found = ANSWERS.find(([pattern]) => pattern.test(prompt))
  const text = found === undefined ? FALLBACK : found[1]
  return text.match(/\s*\S+/g) ?? []
}

/**
 * Yields `tokens` from index `from` on, one every `delay` ms, like a model generating them.
 * Stops (with an AbortError) as soon as `signal` aborts: pass the stream's signal.
 */
export async function * generate (tokens: readonly string[], { from = 0, delay = 40, signal }: { from?: number, delay?: number, signal?: AbortSignal } = {}): AsyncGenerator<{ index: number, text: string }> {
  for (let index = from; index < tokens.length; index++) {
    await sleep(delay, undefined, { signal })
    yield { index, text: tokens[index] }
  }
}
