import type { Browser, Page } from 'playwright-core'

export interface RoomPageOptions {
  /** Playwright's default timeout for the page (ms). */
  timeout?: number
  /** Wait until the page says 'connected' (default true; false for a member the room refuses). */
  connected?: boolean
  /** Sees the page before it loads (to record its socket frames, say). */
  watch?: (page: Page) => void
}

/** A fresh browser context (its own cookies) on the example page at `url`, logged in as `username`, joined to `room`. */
export async function userInRoom (browser: Browser, url: string, username: string, room: string, options: RoomPageOptions = {}): Promise<Page> {
  const context = await browser.newContext()
  const page = await context.newPage()
  page.setDefaultTimeout(options.timeout ?? 15_000)
  options.watch?.(page)
  await page.goto(url)
  await page.fill('#username', username)
  await page.fill('#password', username)
  await page.click('#login')
  await page.waitForSelector('#chat-panel:not([hidden])')
  await page.fill('#room', room)
  await page.click('#join')
  if (options.connected !== false) await page.waitForFunction("document.getElementById('status').textContent === 'connected'")
  return page
}
