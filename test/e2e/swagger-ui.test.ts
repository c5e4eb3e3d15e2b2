import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { chromium } from 'playwright-core'
import type { BrowserContext, Locator, Page } from 'playwright-core'
import t from 'tap'
import type { Test } from 'tap'
import fastifyConduit, { openapiEventStreamFallback } from '../../lib/index.js'
import { listen } from '../support/index.js'

// @fastify/swagger-ui, in Debian's Chromium, renders what @fastify/swagger writes for routes
// with schema.sse: in an OpenAPI 3.2 document, their text/event-stream response and the events
// it names; in a 3.1 document with openapiEventStreamFallback, each event's own schema.
// UPDATE_SCREENSHOT=1 also writes docs/swagger-ui.png (the 3.2 document) and
// docs/swagger-ui-3.1.png (an operation of the 3.1 one), which the README shows.

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']
const SCREENSHOTS = join(import.meta.dirname, 'screenshots')
const COMMITTED_SCREENSHOT = join(import.meta.dirname, '..', '..', 'docs', 'swagger-ui.png')
const COMMITTED_FALLBACK = join(import.meta.dirname, '..', '..', 'docs', 'swagger-ui-3.1.png')

const Token = Type.Object({ text: Type.String() })
const Done = Type.Object({ reason: Type.Union([Type.Literal('stop'), Type.Literal('length')]) })
const Headline = Type.Object({ title: Type.String(), audience: Type.Optional(Type.String()) })

/** An app documenting two SSE routes (one streams a channel) at /documentation; returns its URL. */
async function documentedApp (t: Test, openapi: string): Promise<string> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifySwagger, {
    openapi: { openapi, info: { title: 'Chat', version: '1.0.0', description: 'Routes with `schema.sse`, documented by fastify-conduit.' } },
    ...(openapi.startsWith('3.2') ? {} : { transformObject: openapiEventStreamFallback })
  })
  // Schemas shown fully open, rather than one level (Swagger UI's default).
  await app.register(fastifySwaggerUi, { routePrefix: '/documentation', uiConfig: { defaultModelExpandDepth: 10 } })
  await app.register(fastifyConduit)
  const news = app.sse.channel('news', { schema: { headline: Headline } })
  app.get('/chat', { schema: { summary: 'A reply, token by token', sse: { token: Token, done: Done } } }, (request, reply) =>
    reply.sse([{ event: 'token', data: { text: 'Hello' } }, { event: 'done', data: { reason: 'stop' } }]))
  app.get('/news', { schema: { summary: 'Headlines, replayed after Last-Event-ID', sse: { headline: Headline } } }, (request, reply) => reply.sse(news))
  return listen(app)
}

/** Opens the operation of `path` on the documentation page, showing its response's schema. */
async function openOperation (page: Page, path: string): Promise<Locator> {
  const summary = page.locator('.opblock-summary-path', { hasText: new RegExp(`^${path}$`) })
  await summary.click()
  const operation = page.locator('.opblock', { has: summary })
  const responses = operation.locator('.responses-wrapper')
  await responses.getByRole('tab', { name: 'Schema' }).click()
  await responses.locator('.json-schema-2020-12').first().waitFor()
  return responses
}

async function swaggerUiTests (): Promise<void> {
  let browser: BrowserContext
  const pageErrors: Error[] = []
  t.before(async () => {
    const profile = await mkdtemp(join(tmpdir(), 'conduit-swagger-ui-'))
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1000, height: 800 }
    })
    t.teardown(async () => {
      await browser.close()
      await rm(profile, { recursive: true, force: true })
    })
    browser.setDefaultTimeout(20_000)
    browser.on('weberror', (error) => pageErrors.push(error.error()))
  })

  await t.test('OpenAPI 3.2: each SSE route answers text/event-stream, naming its events', async (t) => {
    const url = await documentedApp(t, '3.2.0')
    const page = await browser.newPage()
    await page.goto(url + '/documentation')
    const chat = await openOperation(page, '/chat')
    t.equal(await page.locator('.info .version-stamp').innerText(), 'OAS 3.2')
    t.same(await chat.locator('select.content-type option').allInnerTexts(), ['text/event-stream'])
    t.match(await chat.innerText(), 'Events: token, done;')
    const news = await openOperation(page, '/news')
    t.match(await news.innerText(), 'Events: headline;')
    t.same(pageErrors, [], 'no error on the page')

    if (process.env.UPDATE_SCREENSHOT === '1') {
      // The address bar and the document's URL carry the random port: left out, so that the
      // committed image changes only when the rendering does.
      await page.addStyleTag({ content: '.topbar, .info .link { display: none !important }' })
      await page.mouse.move(0, 0)
      await page.screenshot({ path: COMMITTED_SCREENSHOT, fullPage: true, animations: 'disabled' })
    }
  })

  await t.test('OpenAPI 3.1 with openapiEventStreamFallback: each event is rendered with its schema', async (t) => {
    const url = await documentedApp(t, '3.1.1')
    const page = await browser.newPage()
    await page.goto(url + '/documentation')
    const chat = await openOperation(page, '/chat')
    await chat.getByText('"length"').waitFor()
    const text = await chat.locator('.json-schema-2020-12').first().innerText()
    t.match(text, 'One of')
    for (const [event, property] of [['token', 'text'], ['done', 'reason']]) {
      t.match(text, new RegExp(`Enum[^]*"${event}"\\s*data[^]*media type: application/json\\s*Content schema[^]*${property}`), event)
    }
    t.same(pageErrors, [], 'no error on the page')
    await mkdir(SCREENSHOTS, { recursive: true })
    await page.mouse.move(0, 0)
    const operation = page.locator('.opblock', { has: page.locator('.opblock-summary-path', { hasText: /^\/chat$/ }) })
    await operation.screenshot({ path: process.env.UPDATE_SCREENSHOT === '1' ? COMMITTED_FALLBACK : join(SCREENSHOTS, 'swagger-ui-3.1.png'), animations: 'disabled' })
  })
}

if (!existsSync(CHROMIUM)) {
  const reason = `the Swagger UI test needs Chromium at ${CHROMIUM} (apt-get install chromium)`
  if (process.env.CI === 'true') t.fail(reason + ', and CI=true requires it')
  else t.skip(reason, () => {})
} else {
  await swaggerUiTests()
}
