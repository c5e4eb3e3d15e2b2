import fc from 'fast-check'
import t from 'tap'
import { batch, startFuzzServer } from './clients-fuzz.js'
import { proofScale, recordProof } from '../support/proof.js'

// Generated messages through every formatting path (plain generator, schema.sse, channel live,
// channel replay), each read on a real server by eventsource-parser, undici's EventSource and
// the `eventsource` package: no forged event, field, retry or comment; every event's name, id
// and data as sent (see clients-fuzz.ts for what the wire cannot carry). `npm run soak` runs it
// with 100,000 messages in all (CONDUIT_SOAK=1).

t.test('every path, three clients: exactly the events sent, nothing forged', async (t) => {
  const fuzz = await startFuzzServer(t)
  // npm test: 60 runs. The soak: runs of 100 until 100,000 messages (CONDUIT_FUZZ_MESSAGES) went through.
  const target = proofScale(0, Number(process.env.CONDUIT_FUZZ_MESSAGES ?? 100_000))
  let seed = Number(process.env.CONDUIT_FUZZ_SEED ?? Date.now() % 2 ** 31)
  let runs = 0
  let messages = 0
  const started = Date.now()
  do {
    await fc.assert(fc.asyncProperty(batch(proofScale(12, 60)), async (input) => {
      runs++
      messages += input.plain.length + input.schema.length + input.channel.length
      const found = await fuzz.run(input)
      if (found !== undefined) throw new Error(found)
    }), { numRuns: proofScale(60, 100), seed: seed++ })
  } while (messages < target)
  t.pass(`${runs} runs, ${messages} messages, each read by 3 clients`)
  recordProof('wire-fuzz', { runs, messages, perPath: Math.round(messages / 3), ms: Date.now() - started })
})
