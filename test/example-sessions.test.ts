import { test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { Session } from 'fastify'
import WebSocket from 'ws'
import { openStore } from '../example/db'
import { startExample } from './helpers/child-app'

/** The `name=value` of each Set-Cookie of a response, by name. */
function setCookies (response: Response): Record<string, string> {
  const cookies: Record<string, string> = {}
  for (const header of response.headers.getSetCookie()) {
    const [pair] = header.split(';')
    const at = pair!.indexOf('=')
    cookies[pair!.slice(0, at)] = pair!.slice(at + 1)
  }
  return cookies
}

function login (base: string, username: string, cookie?: string): Promise<Response> {
  return fetch(`${base}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(cookie === undefined ? {} : { cookie }) },
    body: JSON.stringify({ username, password: username })
  })
}

/** The first message and the close code of a socket opened with `cookie`. */
function handshake (url: string, cookie: string): Promise<{ first: unknown, code: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { cookie } })
    let first: unknown
    ws.once('message', (data) => { first = JSON.parse(data.toString()); ws.close(1000) })
    ws.on('close', (code) => resolve({ first, code }))
    ws.on('error', reject)
  })
}

test('logging in issues a new session id, so a planted session id logs nobody in (session fixation)', async (t) => {
  const base = await startExample(t)
  // An attacker holds a valid session id (its own login) and plants it in the victim's browser.
  const planted = setCookies(await login(base, 'carol')).sessionId
  t.ok(planted, 'the attacker has a session id')

  const victim = await login(base, 'alice', `sessionId=${planted}`)
  t.equal(victim.status, 200)
  const issued = setCookies(victim).sessionId
  t.ok(issued, 'login sets a session cookie')
  t.not(issued, planted, 'the session id changes across login')

  const asAttacker = await fetch(`${base}/me`, { headers: { cookie: `sessionId=${planted}` } })
  t.equal(asAttacker.status, 403, 'the planted id is no session at all after login: not alice, and no longer carol')
  const asVictim = await fetch(`${base}/me`, { headers: { cookie: `sessionId=${issued}` } })
  t.match(await asVictim.json(), { username: 'alice' })

  // The socket reads the same, new session.
  const socket = await handshake(`${base.replace('http', 'ws')}/ws/rooms/secret`, `sessionId=${issued}`)
  t.same(socket.first, { action: 'authentication', payload: { status_code: 200, status_text: 'OK', data: { detail: 'OK' } } })
})

test('logging out destroys the session and clears its cookie', async (t) => {
  const base = await startExample(t)
  const session = setCookies(await login(base, 'alice')).sessionId!
  const loggedOut = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie: `sessionId=${session}`, 'content-type': 'application/json' }, body: '{}' })
  t.equal(loggedOut.status, 200)
  t.equal(setCookies(loggedOut).sessionId, '', 'the session cookie is cleared')
  const after = await fetch(`${base}/me`, { headers: { cookie: `sessionId=${session}` } })
  t.equal(after.status, 403, 'the old session id logs nobody in')
})

test('a cookieless visitor gets no session cookie and no stored session; a login stores one that expires', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chanx-example-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const dbPath = join(dir, 'chat.db')
  const base = await startExample(t, { DB_PATH: dbPath })
  const db = new Database(dbPath, { readonly: true, fileMustExist: true })
  t.teardown(() => db.close())
  const storedSessions = (): number => (db.prepare('SELECT COUNT(*) AS n FROM sessions').get() as { n: number }).n

  for (const path of ['/', '/me', '/asyncapi.json', '/nowhere']) {
    const response = await fetch(base + path)
    await response.arrayBuffer()
    t.same(response.headers.getSetCookie(), [], `GET ${path} without a cookie sets no cookie`)
  }
  t.equal(storedSessions(), 0, 'cookieless requests store no session')

  const loggedIn = await login(base, 'alice')
  const cookie = loggedIn.headers.getSetCookie().find((c) => c.startsWith('sessionId='))!
  const cookieExpires = Date.parse(/Expires=([^;]+)/i.exec(cookie)?.[1] ?? '')
  t.ok(cookieExpires > Date.now() && cookieExpires <= Date.now() + 24 * 60 * 60 * 1000, `the session cookie expires within a day (${new Date(cookieExpires).toISOString()})`)
  t.equal(storedSessions(), 1, 'a login stores one session')
  const { expires } = db.prepare('SELECT expires FROM sessions').get() as { expires: number }
  // The cookie's Expires has whole seconds; the store keeps milliseconds.
  t.ok(Math.abs(expires - cookieExpires) < 1000, 'the stored session expires with its cookie')

  // The page still works: the logged-in browser's next request reads the session.
  const me = await fetch(`${base}/me`, { headers: { cookie: cookie.split(';')[0]! } })
  t.match(await me.json(), { username: 'alice' })
})

test('the example\'s session store drops a session when its cookie expires, and sweeps expired ones on save', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chanx-example-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = openStore(join(dir, 'chat.db'))
  t.teardown(() => store.close())
  const db = new Database(join(dir, 'chat.db'), { readonly: true })
  t.teardown(() => db.close())
  const stored = () => (db.prepare('SELECT id FROM sessions ORDER BY id').all() as Array<{ id: string }>).map((row) => row.id)
  const get = (id: string) => new Promise((resolve) => store.sessions.get(id, (_err, session) => resolve(session)))
  const set = (id: string, expires: Date | null) => new Promise<unknown>((resolve) => {
    store.sessions.set(id, { cookie: { expires }, userId: 1 } as unknown as Session, resolve)
  })

  t.equal(await set('live', new Date(Date.now() + 60_000)), undefined)
  t.equal(await set('lapsed', new Date(Date.now() - 1)), undefined)
  t.match(await get('live'), { userId: 1 })
  t.equal(await get('lapsed'), null, 'an expired session is not returned')
  await set('other', new Date(Date.now() + 60_000))
  t.same(stored(), ['live', 'other'], 'and is swept by the next save')
  t.match(await set('forever', null), { message: /needs cookie\.maxAge/ }, 'a session without an expiry is refused')
  t.equal(await get('forever'), null)
})
