import { test } from 'tap'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { browserSkipReason, launchChromium } from './helpers/browser'
import { startExample } from './helpers/child-app'

// Page functions run in the browser; this project compiles without the DOM library.
declare const document: { getElementById (id: string): { dataset: Record<string, string | undefined> } | null, querySelectorAll (selector: string): Iterable<{ textContent: string | null }> }

const root = join(__dirname, '..')
const skip = browserSkipReason()

/** The playground in a fresh browser context logged in (POST /login) as `username`, with `roomId` filled in. */
async function playgroundAs (browser: Browser, base: string, username: string, roomId: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  const page = await context.newPage()
  page.setDefaultTimeout(10_000)
  const login = await page.request.post(base + '/login', { data: { username, password: username } })
  if (!login.ok()) throw new Error(`login as ${username} failed: ${login.status()}`)
  await page.goto(base + '/playground')
  await page.waitForSelector('body[data-ready="true"]')
  await page.click('#routes button[data-channel="ws_rooms_roomId"]')
  await page.fill('#params input[data-param="roomId"]', roomId)
  return page
}

test('the playground connects a member to a room, sends a chat built from the skeleton and shows the broadcast; a non-member sees 4403', { skip, timeout: 90_000 }, async (t) => {
  const base = await startExample(t, { PLAYGROUND: '' })
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const errors: string[] = []

  const alice = await playgroundAs(browser, base, 'alice', 'lobby')
  alice.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()) })
  t.same(await alice.$$eval('#routes button', (buttons) => buttons.map((b) => b.textContent)), ['/ws/rooms/{roomId}'], 'the routes come from the document')
  t.equal(await alice.textContent('#url'), base.replace('http:', 'ws:') + '/ws/rooms/lobby')
  await alice.click('#connect')
  await alice.waitForFunction(() => document.getElementById('status')!.dataset.state === 'open')
  await alice.waitForSelector('#auth:not([hidden])')
  t.equal(await alice.textContent('#auth-status'), '200 OK', 'the authentication message is shown')

  t.same(await alice.$$eval('#action option', (options) => options.map((o) => (o as unknown as { value: string }).value)), ['chat', 'history', 'ping', 'authenticate'])
  await alice.selectOption('#action', 'chat')
  const skeleton = JSON.parse(await alice.inputValue('#message'))
  t.same(skeleton, { action: 'chat', payload: { text: 'string' } }, 'the skeleton follows the chat schema')
  skeleton.payload.text = 'hello from the playground'
  await alice.fill('#message', JSON.stringify(skeleton, null, 2))
  await alice.click('#send')
  await alice.waitForFunction(() => [...document.querySelectorAll('#log li.in')].some((li) => li.textContent!.includes('"is_mine":true')))
  const broadcast = await alice.$$eval('#log li.in .text', (items) => items.map((i) => i.textContent!).filter((text) => text.includes('"chat"')))
  t.equal(broadcast.length, 1)
  t.match(JSON.parse(broadcast[0]!), { action: 'chat', payload: { username: 'alice', text: 'hello from the playground' }, is_mine: true, is_current: true })
  t.match(await alice.textContent('#log'), '→{"action":"chat","payload":{"text":"hello from the playground"}}', 'the sent frame is logged')
  t.match(await alice.textContent('#log li:first-child time'), /^\d\d:\d\d:\d\d\.\d\d\d$/, 'log lines are timestamped')

  const carol = await playgroundAs(browser, base, 'carol', 'secret')
  await carol.click('#connect')
  await carol.waitForFunction(() => document.getElementById('status')!.dataset.closeCode !== undefined)
  t.equal(await carol.getAttribute('#status', 'data-close-code'), '4403')
  t.equal(await carol.textContent('#auth-status'), '403 Forbidden')
  t.equal(await carol.textContent('#auth-detail'), 'You are not a member of this room.')
  t.match(await carol.textContent('#log'), 'closed with code 4403')
  t.same(errors, [], 'no console errors (the CSP let everything the page needs load)')

  const shots = join(root, '.tap', 'screenshots')
  mkdirSync(shots, { recursive: true })
  await alice.screenshot({ path: join(shots, 'playground-member.png'), fullPage: true })
  // The README's picture is refreshed on request only, so a test run leaves the work tree as it was.
  if (process.env.UPDATE_SCREENSHOTS === '1') await alice.screenshot({ path: join(root, 'docs', 'playground.png'), fullPage: true })
  await carol.screenshot({ path: join(shots, 'playground-refused.png'), fullPage: true })
})
