import { test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { browserSkipReason, launchChromium } from './helpers/browser'
import { userInRoom } from './helpers/example-page'
import { startChildProcess } from './helpers/child-app'

const skip = browserSkipReason()

async function say (page: Page, text: string): Promise<void> {
  await page.fill('#text', text)
  await page.click('#send')
}

test('after a server restart the example page reconnects by itself and keeps chatting', { skip, timeout: 120_000 }, async (t) => {
  // The database (users, sessions, messages) is a file, so the restarted server knows the logged-in users.
  const dir = mkdtempSync(join(tmpdir(), 'chanx-example-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const env = { DB_PATH: join(dir, 'chat.db'), REDIS_URL: '' }
  const first = await startChildProcess(t, 'example/server.ts', env)
  const port = new URL(first.base).port
  const browser = await launchChromium()
  t.teardown(() => browser.close())
  const alice = await userInRoom(browser, `${first.base}/`, 'alice', 'lobby', { timeout: 20_000 })
  const bob = await userInRoom(browser, `${first.base}/`, 'bob', 'lobby', { timeout: 20_000 })
  await say(alice, 'before the restart')
  await bob.waitForFunction("document.getElementById('log').textContent.includes('alice: before the restart')")

  await first.stop()
  await alice.waitForFunction("document.getElementById('status').textContent.startsWith('reconnecting')")
  const second = await startChildProcess(t, 'example/server.ts', { ...env, PORT: port })
  t.equal(second.base, first.base, 'the server came back on the same address')
  await alice.waitForFunction("document.getElementById('status').textContent === 'connected'")
  await bob.waitForFunction("document.getElementById('status').textContent === 'connected'")
  t.match(await alice.textContent('#log'), 'reconnected', 'the page says it reconnected')

  await say(alice, 'after the restart')
  await bob.waitForFunction("document.getElementById('log').textContent.includes('alice: after the restart')")
  t.pass('a message sent after the restart reached the other member')
})
