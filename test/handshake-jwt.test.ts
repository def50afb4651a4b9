import { createHmac } from 'node:crypto'
import { test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { IsAuthenticated, jwtAuthentication, type JwtAuthenticationOptions } from '../plugin'
import {
  NOT_PROVIDED_401,
  OK_MESSAGE,
  buildApp,
  injectRefused,
  injectSocket,
  listen,
  realSocket,
  refusal,
  unsignedToken
} from './helpers/handshake'

const INVALID_TOKEN = refusal(401, 'Unauthorized', 'Invalid token')

/** A route that authenticates by JWT only and greets `request.user.sub`. */
async function jwtApp (t: Parameters<typeof buildApp>[0], options: JwtAuthenticationOptions = { query: 'token' }) {
  const app = await buildApp(t)
  const handled: unknown[] = []
  app.get('/ws', { websocket: true, authentication: [jwtAuthentication(options)], permissions: [IsAuthenticated] }, (socket, request) => {
    handled.push(request.user)
    socket.send(`hello ${(request.user as { sub: string }).sub}`)
  })
  app.get('/api/me', { authentication: [jwtAuthentication(options)], permissions: [IsAuthenticated] }, async (request) => ({ sub: (request.user as { sub: string }).sub }))
  await app.ready()
  return { app, handled }
}

/** An HS256 token signed with another secret, built by hand. */
function forgedToken (payload: Record<string, unknown>): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(payload)}`
  const signature = createHmac('sha256', 'not-the-server-secret-at-all-not-at-all').update(unsigned).digest('base64url')
  return `${unsigned}.${signature}`
}

function sign (app: FastifyInstance, payload: Record<string, unknown>): string {
  return app.jwt.sign(payload)
}

test('a JWT in the token cookie authenticates the handshake', async (t) => {
  const { app, handled } = await jwtApp(t)
  const socket = await injectSocket(app, '/ws', { headers: { cookie: `token=${sign(app, { sub: 'alice' })}` } })
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, 'hello alice'])
  t.match(handled, [{ sub: 'alice' }])
})

test('a JWT in ?token= authenticates the handshake', async (t) => {
  const { app } = await jwtApp(t)
  const socket = await injectSocket(app, `/ws?token=${sign(app, { sub: 'bob' })}`)
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, 'hello bob'])
})

test('a JWT in Authorization: Bearer authenticates the handshake', async (t) => {
  const { app } = await jwtApp(t)
  const socket = await injectSocket(app, '/ws', { headers: { authorization: `Bearer ${sign(app, { sub: 'carol' })}` } })
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, 'hello carol'])
})

test('real ws clients authenticate by cookie, query token and Authorization header', async (t) => {
  const { app } = await jwtApp(t)
  await listen(app)
  const byCookie = realSocket(t, app, '/ws', { headers: { cookie: `token=${sign(app, { sub: 'cookie-user' })}` } })
  const byQuery = realSocket(t, app, `/ws?token=${sign(app, { sub: 'query-user' })}`)
  const byHeader = realSocket(t, app, '/ws', { headers: { authorization: `Bearer ${sign(app, { sub: 'header-user' })}` } })
  await Promise.all([byCookie.opened, byQuery.opened, byHeader.opened])
  await Promise.all([byCookie.waitForMessages(2), byQuery.waitForMessages(2), byHeader.waitForMessages(2)])
  t.same(byCookie.messages, [OK_MESSAGE, 'hello cookie-user'])
  t.same(byQuery.messages, [OK_MESSAGE, 'hello query-user'])
  t.same(byHeader.messages, [OK_MESSAGE, 'hello header-user'])
})

test('the query token is read only when jwtAuthentication names the parameter', async (t) => {
  const { app } = await jwtApp(t, {})
  const socket = await injectRefused(app, `/ws?token=${sign(app, { sub: 'alice' })}`)
  t.same(socket.messages, [NOT_PROVIDED_401])
  t.equal(socket.code, 4401)
})

test('the Authorization header wins over the cookie', async (t) => {
  const { app } = await jwtApp(t)
  const socket = await injectSocket(app, '/ws', {
    headers: { authorization: `Bearer ${sign(app, { sub: 'header' })}`, cookie: `token=${sign(app, { sub: 'cookie' })}` }
  })
  await socket.waitForMessages(2)
  t.equal(socket.messages[1], 'hello header')
})

test('an expired token is refused with 401 "Token expired" and 4401', async (t) => {
  const { app, handled } = await jwtApp(t)
  const expired = sign(app, { sub: 'alice', exp: Math.floor(Date.now() / 1000) - 60 })
  for (const headers of [{ cookie: `token=${expired}` }, { authorization: `Bearer ${expired}` }] as Array<Record<string, string>>) {
    const socket = await injectRefused(app, '/ws', { headers })
    t.same(socket.messages, [refusal(401, 'Unauthorized', 'Token expired')])
    t.equal(socket.code, 4401)
  }
  const byQuery = await injectRefused(app, `/ws?token=${expired}`)
  t.same(byQuery.messages, [refusal(401, 'Unauthorized', 'Token expired')])
  t.equal(byQuery.code, 4401)
  t.same(handled, [])
})

test('a token signed with another secret is refused with 401 "Invalid token"', async (t) => {
  const { app, handled } = await jwtApp(t)
  const forged = forgedToken({ sub: 'mallory' })
  for (const path of ['/ws?token=' + forged]) {
    const socket = await injectRefused(app, path)
    t.same(socket.messages, [INVALID_TOKEN])
    t.equal(socket.code, 4401)
  }
  for (const headers of [{ cookie: `token=${forged}` }, { authorization: `Bearer ${forged}` }] as Array<Record<string, string>>) {
    const socket = await injectRefused(app, '/ws', { headers })
    t.same(socket.messages, [INVALID_TOKEN])
    t.equal(socket.code, 4401)
  }
  t.same(handled, [])
})

test('an alg:none token is refused with 401 "Invalid token"', async (t) => {
  const { app, handled } = await jwtApp(t)
  const none = unsignedToken({ sub: 'mallory', iat: Math.floor(Date.now() / 1000) })
  for (const path of ['/ws?token=' + none]) {
    const socket = await injectRefused(app, path)
    t.same(socket.messages, [INVALID_TOKEN])
    t.equal(socket.code, 4401)
  }
  for (const headers of [{ cookie: `token=${none}` }, { authorization: `Bearer ${none}` }] as Array<Record<string, string>>) {
    const socket = await injectRefused(app, '/ws', { headers })
    t.same(socket.messages, [INVALID_TOKEN])
    t.equal(socket.code, 4401)
  }
  const http = await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${none}` } })
  t.equal(http.statusCode, 401)
  t.equal(http.body, '{"detail":"Invalid token"}')
  t.same(handled, [])
})

test('a garbage token is refused with 401 "Invalid token", never 500', async (t) => {
  const { app } = await jwtApp(t)
  for (const token of ['not-a-jwt', 'a.b.c', 'eyJhbGciOiJIUzI1NiJ9..']) {
    const socket = await injectRefused(app, '/ws?token=' + encodeURIComponent(token))
    t.same(socket.messages, [INVALID_TOKEN], token)
    t.equal(socket.code, 4401)
  }
})

test('a malformed Authorization header is refused with 401 and DRF\'s detail', async (t) => {
  const { app } = await jwtApp(t)
  const bare = await injectRefused(app, '/ws', { headers: { authorization: 'Bearer' } })
  t.same(bare.messages, [refusal(401, 'Unauthorized', 'Invalid Authorization header. No credentials provided.')])
  t.equal(bare.code, 4401)
  const spaced = await injectRefused(app, '/ws', { headers: { authorization: 'Bearer abc def' } })
  t.same(spaced.messages, [refusal(401, 'Unauthorized', 'Invalid Authorization header. Credentials string should not contain spaces.')])
  t.equal(spaced.code, 4401)
  const http = await app.inject({ url: '/api/me', headers: { authorization: 'Bearer ' } })
  t.equal(http.statusCode, 401)
  t.equal(http.body, '{"detail":"Invalid Authorization header. No credentials provided."}')
  t.equal(http.headers['www-authenticate'], 'Bearer realm="api"')
})

test('another Authorization scheme is not a JWT: the request is anonymous (4401)', async (t) => {
  const { app } = await jwtApp(t)
  const socket = await injectRefused(app, '/ws', { headers: { authorization: 'Basic YWxpY2U6c2VjcmV0' } })
  t.same(socket.messages, [NOT_PROVIDED_401])
  t.equal(socket.code, 4401)
})

test('loadUser turns the payload into the user', async (t) => {
  const { app, handled } = await jwtApp(t, { query: 'token', loadUser: (payload) => ({ sub: `loaded:${(payload as { sub: string }).sub}` }) })
  const socket = await injectSocket(app, `/ws?token=${sign(app, { sub: 'alice' })}`)
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, 'hello loaded:alice'])
  t.same(handled, [{ sub: 'loaded:alice' }])
})

test('loadUser returning null refuses with 401 "User not found"', async (t) => {
  const { app, handled } = await jwtApp(t, { query: 'token', loadUser: async () => null })
  const socket = await injectRefused(app, `/ws?token=${sign(app, { sub: 'ghost' })}`)
  t.same(socket.messages, [refusal(401, 'Unauthorized', 'User not found')])
  t.equal(socket.code, 4401)
  const http = await app.inject({ url: `/api/me?token=${sign(app, { sub: 'ghost' })}` })
  t.equal(http.statusCode, 401)
  t.equal(http.body, '{"detail":"User not found"}')
  t.same(handled, [])
})

test('challenge: false makes a bad token a 403 without WWW-Authenticate', async (t) => {
  const { app } = await jwtApp(t, { query: 'token', challenge: false })
  const socket = await injectRefused(app, '/ws?token=nope')
  t.same(socket.messages, [refusal(403, 'Forbidden', 'Invalid token')])
  t.equal(socket.code, 4403)
  const http = await app.inject({ url: '/api/me?token=nope' })
  t.equal(http.statusCode, 403)
  t.equal(http.headers['www-authenticate'], undefined)
})

test('a valid token on an HTTP route runs the handler with request.user', async (t) => {
  const { app } = await jwtApp(t)
  const response = await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${sign(app, { sub: 'alice' })}` } })
  t.equal(response.statusCode, 200)
  t.equal(response.body, '{"sub":"alice"}')
  const expired = await app.inject({ url: '/api/me', headers: { cookie: `token=${sign(app, { sub: 'a', exp: 1 })}` } })
  t.equal(expired.statusCode, 401)
  t.equal(expired.body, '{"detail":"Token expired"}')
  t.equal(expired.headers['www-authenticate'], 'Bearer realm="api"')
})

test('a non-Bearer Authorization header does not hide a valid token cookie', async (t) => {
  const { app } = await jwtApp(t)
  const socket = await injectSocket(app, '/ws', { headers: { authorization: 'Basic YWxpY2U6c2VjcmV0', cookie: `token=${sign(app, { sub: 'alice' })}` } })
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, 'hello alice'])
})

test('a repeated ?token= parameter is refused with 401 "Invalid token"', async (t) => {
  const { app } = await jwtApp(t)
  const token = sign(app, { sub: 'alice' })
  const socket = await injectRefused(app, `/ws?token=${token}&token=${token}`)
  t.same(socket.messages, [INVALID_TOKEN])
  t.equal(socket.code, 4401)
})
