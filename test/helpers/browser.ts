import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Why the browser tests cannot run here, or false when they can. Without Debian's chromium they are
 * skipped with this reason, except on CI (process.env.CI), where a missing browser is a failure.
 */
export function browserSkipReason (): string | false {
  if (existsSync(CHROMIUM)) return false
  const reason = `${CHROMIUM} not found; install Debian's chromium to run the browser tests`
  if (process.env.CI) throw new Error(`CI is set but ${reason}`)
  console.log(`# skipping browser tests: ${reason}`)
  return reason
}

/** Debian's chromium, headless, with the flags this closed network needs (no background connections). */
export function launchChromium (): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'
    ]
  })
}
