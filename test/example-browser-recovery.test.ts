import { test } from 'tap'
import type { Page } from 'playwright-core'
import { browserSkipReason, launchChromium } from './helpers/browser'
import { userInRoom } from './helpers/example-page'
import { startExample } from './helpers/child-app'
import { TcpProxy } from './helpers/recovery'

const skip = browserSkipReason()

/** bob, over REST straight to the app (not through the proxy): posts go to the room's sockets and its history. */
async function restMember (base: string, username: string): Promise<(text: string) => Promise<void>> {
  const login = await fetch(`${base}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: username })
  })
  if (login.status !== 200) throw new Error(`login as ${username}: ${login.status}`)
  const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ')
  return async (text) => {
    const posted = await fetch(`${base}/api/rooms/lobby/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie },
      body: JSON.stringify({ text })
    })
    if (posted.status !== 201) throw new Error(`post as ${username}: ${posted.status}`)
  }
}

/** The chat lines on the page, in the order shown (system and error lines left out). */
function chatLines (page: Page): Promise<string[]> {
  return page.$$eval('#log .msg', (lines) => lines
    .filter((line) => !line.classList.contains('system') && !line.classList.contains('error'))
    .map((line) => line.textContent ?? ''))
}

test('a connection cut through a proxy while another member sends: after it, the page shows every message once, in order (HISTORY=on)', { skip, timeout: 60_000 }, async (t) => {
  const app = await startExample(t, { HISTORY: 'on' })
  const proxy = await new TcpProxy(Number(new URL(app).port)).start()
  t.teardown(() => proxy.close())
  const browser = await launchChromium()
  t.teardown(() => browser.close())

  // alice's page, its HTTP requests and its socket all go through the proxy: her network.
  // On every socket the page opens: each history request it sends, and each chat message it receives (live
  // or replayed): the page shows a message once by its id, so the wire is checked on its own.
  let historyRequests = 0
  const received: string[] = []
  const alice = await userInRoom(browser, `http://127.0.0.1:${proxy.port}/`, 'alice', 'lobby', {
    watch: (page) => {
      page.on('websocket', (ws) => {
        ws.on('framesent', (frame) => { if (String(frame.payload).includes('"action":"history"')) historyRequests++ })
        ws.on('framereceived', (frame) => {
          const message = JSON.parse(String(frame.payload)) as { action: string, payload: { username: string, text: string } }
          if (message.action === 'chat') received.push(`${message.payload.username}: ${message.payload.text}`)
        })
      })
    }
  })
  const bob = await restMember(app, 'bob')
  await bob('before the cut')
  await alice.waitForFunction("document.getElementById('log').textContent.includes('bob: before the cut')")

  // The network goes down: every connection is reset and new ones are refused while bob sends.
  proxy.refusing = true
  proxy.cut()
  await alice.waitForFunction("document.getElementById('status').textContent.startsWith('reconnecting')")
  const missed = ['while cut 1', 'while cut 2', 'while cut 3', 'while cut 4', 'while cut 5']
  for (const text of missed) {
    await bob(text)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.not(await alice.textContent('#status'), 'connected', 'the page stayed disconnected while bob sent')
  t.notMatch(await alice.textContent('#log'), 'while cut', 'and saw none of it then')

  // The network comes back: the client's next attempt (within its backoff) resumes.
  proxy.refusing = false
  await alice.waitForFunction("document.getElementById('status').textContent === 'connected'", undefined, { timeout: 20_000 })
  await bob('after 1')
  await bob('after 2')
  // alice's own message goes out on her socket after any history request of this open, so once it is back,
  // every reply the page waited for has been shown.
  await alice.fill('#text', 'done')
  await alice.click('#send')
  await alice.waitForFunction("document.getElementById('log').textContent.includes('alice: done')")

  const expected = [
    'bob: before the cut',
    ...missed.map((text) => `bob: ${text}`),
    'bob: after 1',
    'bob: after 2',
    'alice: done'
  ]
  t.same(await chatLines(alice), expected, 'the page shows each message once, in order')
  t.same(received, expected, 'the sockets received each once, in order: the ones sent during the cut replayed on the resume')
  t.match(await alice.textContent('#log'), 'reconnected; missed messages recovered', 'the client reported the resume as recovered')
  t.equal(historyRequests, 1, 'after a recovered resume the page did not fetch the history again')
})
