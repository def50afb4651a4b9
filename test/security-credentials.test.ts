import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import session from '@fastify/session'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import chanx, { IsAuthenticated, jwtAuthentication, sessionAuthentication, type Authenticator } from '../plugin'
import { MAX_TIMER_DELAY, setLongTimeout } from '../plugin/core/limits'
import { closeApp, connect } from '../plugin/testing'
import { socketApp, type Teardown } from './helpers/router-client'

const SECRET = 'a-credentials-secret-of-32-characters!'

/** An app whose only route, /ws, takes a JWT from the `token` query parameter and requires a user. */
async function jwtApp (t: Teardown): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated] })
  app.get('/ws', { websocket: true }, () => {})
  await app.ready()
  return app
}

test('a socket authenticated by a JWT is closed with 4401 "Token expired" when the token expires', async (t) => {
  const app = await jwtApp(t)

  // At least one whole second ahead: a token that expires during the handshake would be refused there.
  const exp = Math.floor(Date.now() / 1000) + 2
  const client = await connect(app, '/ws', { query: { token: app.jwt.sign({ sub: 'alice', exp }) }, timeout: 3000 })
  t.equal((await client.authentication()).status_code, 200)
  t.same(await client.receive(), {
    action: 'authentication',
    payload: { status_code: 401, status_text: 'Unauthorized', data: { detail: 'Token expired' } }
  })
  t.equal(await client.closed(), 4401)
  t.ok(Date.now() >= exp * 1000, 'not before the expiry')
})

test('a token without exp keeps its socket open', async (t) => {
  const app = await jwtApp(t)
  const client = await connect(app, '/ws', { query: { token: app.jwt.sign({ sub: 'alice' }) }, timeout: 300 })
  await client.authentication()
  await t.rejects(client.closed(), /did not close/)
})

test('an expiry beyond setTimeout\'s range (a 30-day token) does not fire at once', async (t) => {
  let fired = false
  const timer = setLongTimeout(() => { fired = true }, 30 * 24 * 3600 * 1000)
  t.ok(30 * 24 * 3600 * 1000 > MAX_TIMER_DELAY)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(fired, false)
  timer.cancel()

  // The timers are unref'd (a socket keeps the process alive); hold the loop open while waiting.
  const keepAlive = setInterval(() => {}, 1000)
  const short = await new Promise<boolean>((resolve) => { setLongTimeout(() => resolve(true), 10) })
  clearInterval(keepAlive)
  t.equal(short, true)
})

async function sessionApp (reauthenticateInterval: number, extra?: Authenticator) {
  const app = Fastify()
  const active = new Set([1])
  await app.register(cookie)
  await app.register(session, { secret: SECRET, cookie: { secure: false } })
  await app.register(websocket)
  await app.register(chanx, {
    authentication: [sessionAuthentication({ loadUser: (id) => active.has(Number(id)) ? { id: Number(id) } : null }), ...(extra ? [extra] : [])],
    permissions: [IsAuthenticated],
    reauthenticateInterval
  })
  app.get('/login', async (request) => { request.session.set('userId' as never, 1 as never); return 'in' })
  app.get('/logout', async (request) => { await request.session.destroy(); return 'out' })
  app.get('/ws', { websocket: true }, () => {})
  await app.ready()
  const login = await app.inject('/login')
  const cookies = login.cookies.map((c) => `${c.name}=${c.value}`).join('; ')
  return { app, active, cookies }
}

test('reauthenticateInterval closes the socket of a destroyed session', async (t) => {
  const { app, cookies } = await sessionApp(100)
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws', { cookies, timeout: 2000 })
  t.equal((await client.authentication()).status_code, 200)
  await app.inject({ url: '/logout', headers: { cookie: cookies } })
  t.same(await client.receive(), {
    action: 'authentication',
    payload: { status_code: 403, status_text: 'Forbidden', data: { detail: 'Authentication credentials were not provided.' } }
  })
  t.equal(await client.closed(), 4403)
})

test('reauthenticateInterval closes the socket of a deactivated user', async (t) => {
  const { app, cookies, active } = await sessionApp(100)
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws', { cookies, timeout: 2000 })
  await client.authentication()
  active.delete(1)
  t.equal(await client.closed(), 4403)
})

test('a re-authentication that throws keeps the socket open', async (t) => {
  let calls = 0
  const flaky: Authenticator = {
    authenticate () {
      calls++
      if (calls > 1) throw new Error('user store unreachable')
      return null
    }
  }
  // The session authenticator comes first and wins; make the flaky one run by logging nobody in.
  const app = await socketApp(t, { chanx: { authentication: [flaky], reauthenticateInterval: 50 } })
  app.get('/ws', { websocket: true }, () => {})
  await app.ready()
  const client = await connect(app, '/ws', { timeout: 400 })
  await client.authentication()
  await t.rejects(client.closed(), /did not close/)
  t.ok(calls > 2, 'the pipeline ran again')
})

test('reauthenticateInterval is checked at registration', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(chanx, { reauthenticateInterval: -1 }) }, { code: 'FST_CHANX_INVALID_OPTION', message: /reauthenticateInterval/ })
})
