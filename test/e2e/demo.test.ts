import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EventSource } from 'eventsource'
import type { FastifyInstance } from 'fastify'
import { chromium, type Page } from 'playwright-core'
import t from 'tap'
import { answer } from '../../example/assistant.ts'
import { buildDemo } from '../../example/demo/server.ts'

// The demo page in Debian's Chromium: every widget fills with live data, a server restart is
// survived, and a notification published in one tab shows in the other.

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']
const SCREENSHOT = join(import.meta.dirname, 'screenshots', 'demo.png')
const COMMITTED_SCREENSHOT = join(import.meta.dirname, '..', '..', 'docs', 'demo.png')

const received = (page: Page, selector: string): Promise<string | undefined> =>
  page.$eval(selector, (node) => (node as HTMLElement).dataset.received)

t.test('the demo page, live', async (t) => {
  // What the server logs (as JSON lines): the chat test counts the answers it started.
  const logs: Array<{ msg?: string, answer?: string, req?: { url?: string } }> = []
  const logger = { level: 'info', stream: { write: (line: string) => { logs.push(JSON.parse(line)) } } }
  let app: FastifyInstance = await buildDemo({ logger })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const url = `http://127.0.0.1:${port}`
  t.teardown(() => app.close())

  const profile = await mkdtemp(join(tmpdir(), 'conduit-demo-'))
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 }
  })
  t.teardown(async () => {
    await browser.close()
    await rm(profile, { recursive: true, force: true })
  })
  browser.setDefaultTimeout(20_000)
  const pageErrors: Error[] = []
  const page = browser.pages()[0] ?? await browser.newPage()
  page.on('pageerror', (err) => pageErrors.push(err))
  await page.goto(url)

  await t.test('clock and counter survive a server restart', async (t) => {
    await page.waitForSelector('#connection[data-state="open"]')
    t.match(await page.textContent('#time-output'), /^\d\d:\d\d:\d\d$/)
    await page.waitForFunction(() => (document.querySelector<HTMLElement>('#counter-output')?.dataset.received ?? '').split(',').length >= 2)

    await app.close()
    app = await buildDemo({ logger })
    await app.listen({ host: '127.0.0.1', port })
    const before = await page.textContent('#time-output')
    await page.waitForFunction((before) => document.querySelector('#time-output')?.textContent !== before, before)
    t.pass('the clock ticks again, from the new server')

    // EventSource reconnected with Last-Event-ID, so the count went on where it was: each of
    // 1..10 exactly once, in order. At 10 the server answered 204 and EventSource stopped.
    await page.waitForSelector('.badge[data-stream="count"][data-state="closed"]')
    t.equal(await received(page, '#counter-output'), '1,2,3,4,5,6,7,8,9,10')
    await page.waitForSelector('#connection[data-state="open"]')
  })

  await t.test('chat, progress and tool runs stream to the end', async (t) => {
    await page.fill('#chat-input', 'hello')
    await page.click('#chat-form button')
    await page.click('#progress-start')
    await page.click('#tool-form button')

    await page.waitForSelector('#chat .assistant[data-done="stop"]')
    t.equal(await page.textContent('#chat .assistant'), answer('hello').join(''))
    await page.fill('#chat-input', 'How does resuming after a restart work?')
    await page.click('#chat-form button')
    await page.waitForSelector('#chat .assistant:nth-of-type(4)[data-done="stop"]')

    await page.waitForSelector('#progress-bar[aria-valuenow="100"]')
    t.match(await page.textContent('#progress-status'), '100% · 5 files downloaded')

    await page.waitForSelector('#tool-log li.result')
    t.match(await page.textContent('#tool-log'), 'Sentence 5 of 5 (5/5)')
    t.equal(await page.textContent('#tool-result .stat:nth-child(2) b'), '30', 'words')
  })

  await t.test('metrics are charted every second', async (t) => {
    await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('canvas[data-metric="cpu"]')?.dataset.points) >= 3)
    t.match(await page.textContent('#metric-memory'), /^\d+(\.\d)? MiB$/)
    t.ok(Number(await page.textContent('#metric-openStreams')) >= 3, 'the page\'s own streams are counted')
    // Something was drawn: the canvas is not blank.
    const painted = await page.$eval('canvas[data-metric="memory"]', (canvas) => {
      const { data } = (canvas as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, (canvas as HTMLCanvasElement).width, (canvas as HTMLCanvasElement).height)
      return data.some((value, i) => i % 4 === 3 && value !== 0)
    })
    t.ok(painted)
  })

  await t.test('a notification published in one tab shows in every tab', async (t) => {
    const second = await browser.newPage()
    second.on('pageerror', (err) => pageErrors.push(err))
    await second.goto(url)
    await second.waitForSelector('.badge[data-stream="notifications"][data-state="open"]')
    // And one more subscriber outside the browser, with its own connection to the channel.
    const outside = new EventSource(url + '/notifications')
    t.teardown(() => outside.close())
    const heard = new Promise<{ title: string, level: string }>((resolve) => {
      outside.addEventListener('notification', (event) => resolve(JSON.parse(event.data)))
    })
    await new Promise((resolve) => { outside.onopen = resolve })

    await page.fill('#notify-title', 'Deploy finished')
    await page.selectOption('#notify-level', 'success')
    await page.click('#notify-form button')
    await second.waitForSelector('#notification-list li.success >> text=Deploy finished')
    await page.waitForSelector('#notification-list li.success >> text=Deploy finished')
    t.match(await heard, { title: 'Deploy finished', level: 'success' })

    await second.fill('#notify-title', 'Disk 80% full')
    await second.selectOption('#notify-level', 'warning')
    await second.click('#notify-form button')
    await page.waitForSelector('#notification-list li.warning >> text=Disk 80% full')
    await second.close()
  })

  await t.test('screenshot', async (t) => {
    await page.waitForSelector('#connection[data-state="open"]')
    await mkdir(join(import.meta.dirname, 'screenshots'), { recursive: true })
    // Finite CSS animations (a notification sliding in) are finished, infinite ones stopped.
    await page.screenshot({ path: SCREENSHOT, fullPage: true, animations: 'disabled' })
    if (process.env.UPDATE_SCREENSHOT === '1') await copyFile(SCREENSHOT, COMMITTED_SCREENSHOT)
    t.same(pageErrors, [], 'no error on the page')
  })

  await t.test('a chat answer survives a page reload: every token once, generated once', async (t) => {
    const prompt = 'How does resuming after a restart work?'
    const tokens = answer(prompt)
    await page.fill('#chat-input', prompt)
    await page.click('#chat-form button')
    const id = await page.$eval('#chat .assistant:last-child', (node) => (node as HTMLElement).dataset.answer as string)
    // Mid-answer: some tokens shown, not all.
    await page.waitForFunction((id) => (document.querySelector(`[data-answer="${id}"]`)?.textContent?.length ?? 0) >= 30, id)
    await page.reload()
    // The reloaded page shows what it had, attaches after the last token it stored, and the
    // answer goes on to its end.
    const resumed = await page.waitForSelector(`#chat [data-answer="${id}"][data-done="stop"]`, { timeout: 30_000 })
    t.equal(await resumed.textContent(), tokens.join(''), 'the whole answer, no token lost or repeated')
    t.equal(logs.filter((line) => line.msg === 'answer started' && line.answer === id).length, 1, 'generated once')
    const attached = logs.filter((line) => line.req?.url?.startsWith(`/ai/answers/${id}/resume?lastEventId=`) === true)
    t.equal(attached.length, 1, 'the reloaded page attached once, after the last id it had')
    t.equal(await page.evaluate(() => sessionStorage.length), 0, 'nothing kept once the answer is done')
    await page.reload()
    await page.waitForSelector('#connection[data-state="open"]')
    t.equal(await page.$(`[data-answer="${id}"]`), null, 'a finished answer is not attached to again')
    t.same(pageErrors, [], 'no error on the page')
  })
})
