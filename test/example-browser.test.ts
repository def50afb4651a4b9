import { test } from 'tap'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { browserSkipReason, launchChromium } from './helpers/browser'
import { startExample } from './helpers/child-app'

const root = join(__dirname, '..')
const skip = browserSkipReason()

/** A fresh browser context (its own cookies) logged in as `username`, joined to `room`. */
async function userInRoom (browser: Browser, base: string, username: string, room: string): Promise<Page> {
  const context = await browser.newContext()
  const page = await context.newPage()
  page.setDefaultTimeout(10_000)
  await page.goto(base + '/')
  await page.fill('#username', username)
  await page.fill('#password', username)
  await page.click('#login')
  await page.waitForSelector('#chat-panel:not([hidden])')
  await page.fill('#room', room)
  await page.click('#join')
  return page
}

test('two members chat in a real browser; a non-member sees the 4403 refusal', { skip, timeout: 90_000 }, async (t) => {
  const base = await startExample(t)
  const browser = await launchChromium()
  t.teardown(() => browser.close())

  const alice = await userInRoom(browser, base, 'alice', 'lobby')
  const bob = await userInRoom(browser, base, 'bob', 'lobby')
  await alice.waitForFunction("document.getElementById('status').textContent === 'connected'")
  await bob.waitForFunction("document.getElementById('status').textContent === 'connected'")

  await alice.fill('#text', 'hello from the browser')
  await alice.click('#send')
  await bob.waitForFunction("document.getElementById('log').textContent.includes('alice: hello from the browser')")
  t.match(await bob.textContent('#log'), 'alice: hello from the browser', 'the message reached the other member')
  t.equal(await alice.getAttribute('#log .mine', 'class'), 'msg mine', 'the sender sees it as its own (is_mine)')

  const carol = await userInRoom(browser, base, 'carol', 'secret')
  await carol.waitForFunction("document.getElementById('status').dataset.closeCode !== undefined")
  t.equal(await carol.getAttribute('#status', 'data-close-code'), '4403')
  t.match(await carol.textContent('#log'), 'closed with code 4403')
  t.equal(await carol.textContent('#status'), 'refused: You are not a member of this room. (closed, 4403)',
    'the refusal\'s detail stays on screen after the close, with the close code')
  t.match(await carol.textContent('#log'), 'refused (403): You are not a member of this room.')

  const shots = join(root, '.tap', 'screenshots')
  mkdirSync(shots, { recursive: true })
  await bob.screenshot({ path: join(shots, 'example-chat.png'), fullPage: true })
  await carol.screenshot({ path: join(shots, 'example-refused.png'), fullPage: true })
})
