import { test } from 'tap'
import WebSocket from 'ws'
import { browserSkipReason, launchChromium } from './helpers/browser'
import { userInRoom } from './helpers/example-page'
import { startExample } from './helpers/child-app'

const skip = browserSkipReason()
const TOKEN_TTL_S = 4

/** The `exp` of a JWT, in ms (unverified: the test only reads when the server will consider it expired). */
function expiryOf (token: string): number {
  return (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000
}

test('the page in token mode refreshes its short-lived token in-band and outlives it, still chatting', { skip, timeout: 60_000 }, async (t) => {
  const base = await startExample(t, { TOKEN_TTL: String(TOKEN_TTL_S) })
  const browser = await launchChromium()
  t.teardown(() => browser.close())

  // Every socket alice's page opens, and every in-band refresh it sends.
  const sockets: string[] = []
  let refreshes = 0
  const alice = await userInRoom(browser, `${base}/?auth=token`, 'alice', 'lobby', {
    watch: (page) => {
      page.on('websocket', (ws) => {
        sockets.push(ws.url())
        ws.on('framesent', (frame) => { if (String(frame.payload).includes('"action":"authenticate"')) refreshes++ })
      })
    }
  })
  const bob = await userInRoom(browser, `${base}/`, 'bob', 'lobby')

  t.equal(sockets.length, 1)
  const token = new URL(sockets[0]!).searchParams.get('token')
  t.ok(token, 'the socket was opened with a token from getToken (?token=), which the route reads before the session')
  const firstExpiry = expiryOf(token!)
  t.ok(firstExpiry - Date.now() <= TOKEN_TTL_S * 1000, `the first token lives at most TOKEN_TTL (${TOKEN_TTL_S} s)`)

  // The control: a socket with alice's cookies and a token of hers that it never refreshes. The route reads
  // the token before the session, so the token's expiry is the socket's: the server closes it with 4401.
  const cookie = (await alice.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ')
  const issued = await fetch(`${base}/token`, { method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: '{}' })
  const controlToken = (await issued.json() as { token: string }).token
  const control = new WebSocket(`${base.replace('http:', 'ws:')}/ws/rooms/lobby?token=${controlToken}`, { headers: { cookie } })
  t.teardown(() => control.terminate())
  const controlFrames: string[] = []
  control.on('message', (data) => controlFrames.push(data.toString()))
  const controlClosed = new Promise<number>((resolve) => control.once('close', (code) => resolve(code)))

  // Past both tokens' expiry, plus the server's expiry sweep (about a second) and a margin: a socket still
  // on its first token has been closed with 4401 by now.
  await new Promise((resolve) => setTimeout(resolve, Math.max(firstExpiry, expiryOf(controlToken)) - Date.now() + 2500))
  t.equal(await Promise.race([controlClosed, 'still open']), 4401, 'the control socket, which did not refresh, was closed with 4401')
  t.match(controlFrames.at(-1), /"status_code":401.*"Token expired"/, 'because its token expired')
  t.equal(await alice.textContent('#status'), 'connected', 'the page is still connected after its first token expired')
  t.same(sockets.length, 1, 'on the socket it opened first: it never reconnected')
  t.notMatch(await alice.textContent('#log'), 'closed with code', 'and it never saw a close (no 4401)')
  t.ok(refreshes >= 2, `the client refreshed in-band with the authenticate action (${refreshes} times)`)
  const refreshedLines = (await alice.$$eval('#log .system', (lines) => lines.map((line) => line.textContent))).filter((text) => text === 'token refreshed')
  t.ok(refreshedLines.length >= 2, `the server accepted them (the client's refreshed event, ${refreshedLines.length} times)`)

  await alice.fill('#text', 'after my first token expired')
  await alice.click('#send')
  await bob.waitForFunction("document.getElementById('log').textContent.includes('alice: after my first token expired')")
  await bob.fill('#text', 'still hearing you')
  await bob.click('#send')
  await alice.waitForFunction("document.getElementById('log').textContent.includes('bob: still hearing you')")
  t.equal(await alice.getAttribute('#log .mine', 'class'), 'msg mine', 'alice\'s own message is hers (is_mine): the socket is still hers')
  t.pass('both members chat on after the first token expired')
})
