import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import t from 'tap'
import { deferred, startApp } from '../support/index.js'

// Chromium's own EventSource reads a compressed stream live: each event is dispatched (and
// acknowledged by the page) before the server produces the next one.

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']
const COUNT = 12

const PAGE = `<!doctype html><meta charset="utf-8"><title>compressed</title><script>
  const got = []
  const source = new EventSource('/tokens' + location.search)
  source.addEventListener('token', (event) => {
    got.push(JSON.parse(event.data).text)
    // The server produces the next token only once this one reached the page.
    fetch('/ack/' + event.lastEventId, { method: 'POST' })
  })
  source.addEventListener('done', () => {
    source.close()
    document.body.dataset.tokens = got.join('|')
  })
</script><body></body>`

if (!existsSync(CHROMIUM) && process.env.CI !== 'true') {
  t.comment(`SKIPPED: no Chromium at ${CHROMIUM} (CI=true requires it; .ci/run installs it)`)
  t.pass('skipped: no Chromium')
} else {
  t.test('Chromium EventSource reads a compressed stream event by event', async (t) => {
    let acks = new Map<string, () => void>()
    const negotiated: Array<{ accept: string | undefined, encoding: unknown }> = []
    const { url } = await startApp(t, { compress: true }, (app) => {
      app.get('/', (request, reply) => reply.type('text/html').send(PAGE))
      app.post('/ack/:id', async (request) => {
        acks.get((request.params as { id: string }).id)?.()
        return null
      })
      app.get('/tokens', (request, reply) => {
        const { encoding } = request.query as { encoding?: 'gzip' | 'br' | 'deflate' }
        const waits = Array.from({ length: COUNT }, () => deferred())
        acks = new Map(waits.map((wait, n) => [String(n), wait.resolve]))
        const streaming = reply.sse(async function * () {
          for (let n = 0; n < COUNT; n++) {
            yield { event: 'token', id: String(n), data: { text: `token ${n}` } }
            await waits[n].promise
          }
          yield { event: 'done', data: {} }
        }, encoding === undefined ? undefined : { compress: { encodings: [encoding] } })
        negotiated.push({ accept: request.headers['accept-encoding'], encoding: reply.getHeader('content-encoding') })
        return streaming
      })
    })

    const profile = await mkdtemp(join(tmpdir(), 'conduit-compress-'))
    const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
    t.teardown(async () => {
      await browser.close()
      await rm(profile, { recursive: true, force: true })
    })
    browser.setDefaultTimeout(20_000)
    const page = browser.pages()[0] ?? await browser.newPage()
    const expected = Array.from({ length: COUNT }, (_, n) => `token ${n}`).join('|')

    // What Chromium prefers first, then each coding it accepts, one at a time.
    await page.goto(url + '/')
    await page.waitForSelector('body[data-tokens]', { state: 'attached' })
    t.equal(await page.getAttribute('body', 'data-tokens'), expected)
    const accept = negotiated[0].accept ?? ''
    t.match(negotiated[0], { encoding: /^(gzip|br|deflate)$/ }, `compressed (Chromium sent Accept-Encoding: ${accept})`)
    for (const encoding of ['gzip', 'deflate', 'br'].filter((coding) => accept.includes(coding))) {
      await page.goto(`${url}/?encoding=${encoding}`)
      await page.waitForSelector('body[data-tokens]', { state: 'attached' })
      t.equal(await page.getAttribute('body', 'data-tokens'), expected, encoding)
      t.equal(negotiated.at(-1)?.encoding, encoding)
    }
  })
}
