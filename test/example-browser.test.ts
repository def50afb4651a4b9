import { test } from 'tap'
import { mkdirSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { browserSkipReason, launchChromium } from './helpers/browser'
import { userInRoom } from './helpers/example-page'
import { startExample } from './helpers/child-app'

const root = join(__dirname, '..')
const skip = browserSkipReason()

test('two members chat in a real browser; a non-member sees the 4403 refusal', { skip, timeout: 90_000 }, async (t) => {
  const base = await startExample(t)
  const browser = await launchChromium()
  t.teardown(() => browser.close())

  const alice = await userInRoom(browser, `${base}/`, 'alice', 'lobby', { timeout: 10_000, connected: false })
  const bob = await userInRoom(browser, `${base}/`, 'bob', 'lobby', { timeout: 10_000, connected: false })
  await alice.waitForFunction("document.getElementById('status').textContent === 'connected'")
  await bob.waitForFunction("document.getElementById('status').textContent === 'connected'")

  await alice.fill('#text', 'hello from the browser')
  await alice.click('#send')
  await bob.waitForFunction("document.getElementById('log').textContent.includes('alice: hello from the browser')")
  t.match(await bob.textContent('#log'), 'alice: hello from the browser', 'the message reached the other member')
  t.equal(await alice.getAttribute('#log .mine', 'class'), 'msg mine', 'the sender sees it as its own (is_mine)')

  const carol = await userInRoom(browser, `${base}/`, 'carol', 'secret', { timeout: 10_000, connected: false })
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

test('a form on a sibling origin that posts to /logout does not log the user out (SameSite=Lax lets its cookies through)', { skip, timeout: 90_000 }, async (t) => {
  const base = await startExample(t)
  // Another port of 127.0.0.1: the same site, so the browser sends the Lax cookies with the form's POST
  // (a sibling subdomain is the same case in production); another origin, so Sec-Fetch-Site says same-site.
  const attacker = createServer((_request, response) => {
    response.setHeader('content-type', 'text/html')
    response.end(`<form id="f" method="POST" action="${base}/logout" enctype="text/plain"><input name="x" value="y"></form>
      <script>document.getElementById('f').submit()</script>`)
  })
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => attacker.close())
  const browser = await launchChromium()
  t.teardown(() => browser.close())

  const context = await browser.newContext()
  const page = await context.newPage()
  page.setDefaultTimeout(10_000)
  await page.goto(base + '/')
  await page.fill('#username', 'alice')
  await page.fill('#password', 'alice')
  await page.click('#login')
  await page.waitForSelector('#chat-panel:not([hidden])')

  const submitted = page.waitForResponse(`${base}/logout`)
  await page.goto(`http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`)
  const response = await submitted
  t.equal(response.status(), 403, 'the form\'s POST is refused')
  t.match((await response.request().allHeaders()).cookie, /sessionId=/, 'the browser did send the session cookie: only the server\'s check stopped it')

  await page.goto(base + '/')
  await page.waitForSelector('#chat-panel:not([hidden])')
  t.equal(await page.textContent('#me'), 'alice', 'alice is still logged in')
  await Promise.all([page.waitForEvent('load'), page.click('#logout')])
  t.equal((await page.request.get(base + '/me')).status(), 403, 'the page\'s own logout button still logs out')
})
