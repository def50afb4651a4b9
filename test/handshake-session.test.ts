import { test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { IsAuthenticated, sessionAuthentication } from '../plugin'
import {
  NOT_PROVIDED_403,
  OK_MESSAGE,
  buildApp,
  cookieHeader,
  injectRefused,
  injectSocket,
  listen,
  realSocket
} from './helpers/handshake'

const users = new Map<number, { id: number, name: string }>([[1, { id: 1, name: 'alice' }]])

/** Logs user `id` in through a real HTTP route and returns the session cookie header. */
async function logIn (app: FastifyInstance, id: number): Promise<string> {
  const response = await app.inject({ method: 'POST', url: '/login', payload: { id } })
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode}`)
  return cookieHeader(response.cookies)
}

async function sessionApp (t: Parameters<typeof buildApp>[0], seen: unknown[]) {
  const app = await buildApp(t)
  app.post('/login', async (request) => {
    request.session.set('userId' as never, (request.body as { id: number }).id as never)
    return { ok: true }
  })
  app.get('/ws', {
    websocket: true,
    authentication: [sessionAuthentication({ loadUser: (id) => users.get(Number(id)) ?? null })],
    permissions: [IsAuthenticated]
  }, (socket, request) => {
    seen.push(request.user)
    socket.send(JSON.stringify({ action: 'hello', payload: request.user }))
  })
  await app.ready()
  return app
}

test('a session cookie set by a login route authenticates the handshake', async (t) => {
  const seen: unknown[] = []
  const app = await sessionApp(t, seen)
  const cookie = await logIn(app, 1)
  const socket = await injectSocket(app, '/ws', { headers: { cookie } })
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, '{"action":"hello","payload":{"id":1,"name":"alice"}}'])
  t.same(seen, [{ id: 1, name: 'alice' }], 'request.user is the loaded user')
})

test('a real ws client with the session cookie is authenticated', async (t) => {
  const seen: unknown[] = []
  const app = await sessionApp(t, seen)
  await listen(app)
  const cookie = await logIn(app, 1)
  const socket = realSocket(t, app, '/ws', { headers: { cookie } })
  await socket.opened
  await socket.waitForMessages(2)
  t.equal(socket.messages[0], OK_MESSAGE)
  t.same(seen, [{ id: 1, name: 'alice' }])
})

test('anonymous handshake on a session route is refused with 4403', async (t) => {
  const seen: unknown[] = []
  const app = await sessionApp(t, seen)
  const socket = await injectRefused(app, '/ws')
  t.same(socket.messages, [NOT_PROVIDED_403])
  t.equal(socket.code, 4403)
  t.same(seen, [], 'the handler never ran')
})

test('a session whose user is gone is anonymous: refused with 4403 by IsAuthenticated', async (t) => {
  const seen: unknown[] = []
  const app = await sessionApp(t, seen)
  const cookie = await logIn(app, 99)
  const socket = await injectRefused(app, '/ws', { headers: { cookie } })
  t.same(socket.messages, [NOT_PROVIDED_403])
  t.equal(socket.code, 4403)
  t.same(seen, [])
})

test('a session whose user is gone reaches an AllowAny route with request.user null', async (t) => {
  const app = await buildApp(t)
  app.post('/login', async (request) => {
    request.session.set('userId' as never, 99 as never)
    return { ok: true }
  })
  let user: unknown = 'unset'
  app.get('/ws', { websocket: true, authentication: [sessionAuthentication({ loadUser: () => null })] }, (socket, request) => {
    user = request.user
    socket.send('handler')
  })
  await app.ready()
  const cookie = await logIn(app, 99)
  const socket = await injectSocket(app, '/ws', { headers: { cookie } })
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, 'handler'])
  t.equal(user, null)
})

test('without loadUser the stored session value is the user', async (t) => {
  const app = await buildApp(t)
  app.post('/login', async (request) => {
    request.session.set('uid' as never, 'bob' as never)
    return { ok: true }
  })
  let user: unknown
  app.get('/ws', { websocket: true, authentication: [sessionAuthentication({ key: 'uid' })], permissions: [IsAuthenticated] }, (socket, request) => {
    user = request.user
    socket.send('handler')
  })
  await app.ready()
  const cookie = await logIn(app, 0)
  const socket = await injectSocket(app, '/ws', { headers: { cookie } })
  await socket.waitForMessages(2)
  t.equal(user, 'bob')
})

test('a forged session cookie is anonymous, refused with 4403', async (t) => {
  const seen: unknown[] = []
  const app = await sessionApp(t, seen)
  const socket = await injectRefused(app, '/ws', { headers: { cookie: 'sessionId=forged.signature' } })
  t.same(socket.messages, [NOT_PROVIDED_403])
  t.equal(socket.code, 4403)
})

test('sessionAuthentication with loadUser on an HTTP route sets request.user', async (t) => {
  const app = await buildApp(t)
  app.post('/login', async (request) => {
    request.session.set('userId' as never, 1 as never)
    return { ok: true }
  })
  app.get('/me', {
    authentication: [sessionAuthentication({ loadUser: (id) => users.get(Number(id)) ?? null })],
    permissions: [IsAuthenticated]
  }, async (request) => ({ user: request.user }))
  await app.ready()
  const cookie = await logIn(app, 1)
  const ok = await app.inject({ url: '/me', headers: { cookie } })
  t.equal(ok.statusCode, 200)
  t.equal(ok.body, '{"user":{"id":1,"name":"alice"}}')
  const anonymous = await app.inject({ url: '/me' })
  t.equal(anonymous.statusCode, 403)
  t.equal(anonymous.body, '{"detail":"Authentication credentials were not provided."}')
  t.equal(anonymous.headers['www-authenticate'], undefined, 'no challenge without a challenging authenticator')
})
