import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import chanx, { IsAuthenticated, jwtAuthentication, type JwtAuthenticationOptions } from '../plugin'
import { INTERNAL_500, NOT_PROVIDED_401, OK_MESSAGE, captureLogs, closeApp, injectRefused, injectSocket, refusal, type Teardown } from './helpers/handshake'

/** Where jwtAuthentication looks for a token (header, cookie, query, subprotocol) under each of its options. */

const JWT_SECRET = 'a-jwt-sources-secret-of-32-characters!'
const COOKIE_SECRET = 'a-cookie-signing-secret-of-32-chars!!'
const INVALID_TOKEN = refusal(401, 'Unauthorized', 'Invalid token')

let logs = captureLogs()

async function jwtApp (t: Teardown, options: JwtAuthenticationOptions, plugins: { cookie?: boolean } = {}): Promise<FastifyInstance> {
  logs = captureLogs()
  const app = Fastify({ logger: logs.logger })
  t.teardown(() => closeApp(app))
  if (plugins.cookie !== false) await app.register(cookie, { secret: COOKIE_SECRET })
  await app.register(jwt, { secret: JWT_SECRET })
  await app.register(websocket)
  await app.register(chanx)
  app.get('/ws', { websocket: true, authentication: [jwtAuthentication(options)], permissions: [IsAuthenticated] }, (socket, request) => {
    socket.send(`hello ${(request.user as { sub: string }).sub}`)
  })
  await app.ready()
  return app
}

async function greeted (app: FastifyInstance, path: string, headers: Record<string, string>): Promise<string[]> {
  const socket = await injectSocket(app, path, { headers })
  return await socket.waitForMessages(2)
}

test('cookie: "name" reads the token from that cookie', async (t) => {
  const app = await jwtApp(t, { cookie: 'auth' })
  t.same(await greeted(app, '/ws', { cookie: `auth=${app.jwt.sign({ sub: 'alice' })}` }), [OK_MESSAGE, 'hello alice'])
  const other = await injectRefused(app, '/ws', { headers: { cookie: `token=${app.jwt.sign({ sub: 'alice' })}` } })
  t.same(other.messages, [NOT_PROVIDED_401], 'another cookie name is not read')
  t.equal(other.code, 4401)
})

test('cookie: { name, signed: true } unsigns the cookie; a bad signature is 401 "Invalid token"', async (t) => {
  const app = await jwtApp(t, { cookie: { name: 'auth', signed: true } })
  const signed = app.signCookie(app.jwt.sign({ sub: 'bob' }))
  t.same(await greeted(app, '/ws', { cookie: `auth=${encodeURIComponent(signed)}` }), [OK_MESSAGE, 'hello bob'])
  const tampered = await injectRefused(app, '/ws', { headers: { cookie: `auth=${encodeURIComponent(signed.slice(0, -2) + 'xx')}` } })
  t.same(tampered.messages, [INVALID_TOKEN])
  t.equal(tampered.code, 4401)
  const unsigned = await injectRefused(app, '/ws', { headers: { cookie: `auth=${app.jwt.sign({ sub: 'bob' })}` } })
  t.same(unsigned.messages, [INVALID_TOKEN], 'an unsigned token in a signed cookie is refused')
})

test('header: false and cookie: false leave only the query: a Bearer header or a cookie is not read', async (t) => {
  const app = await jwtApp(t, { header: false, cookie: false, query: 'access_token' })
  const token = app.jwt.sign({ sub: 'carol' })
  t.same(await greeted(app, `/ws?access_token=${token}`, {}), [OK_MESSAGE, 'hello carol'])
  for (const headers of [{ authorization: `Bearer ${token}` }, { cookie: `token=${token}` }] as Array<Record<string, string>>) {
    const socket = await injectRefused(app, '/ws', { headers })
    t.same(socket.messages, [NOT_PROVIDED_401], Object.keys(headers)[0])
    t.equal(socket.code, 4401)
  }
})

test('a cookie source without @fastify/cookie is a 500 at the handshake, logged as a missing dependency', async (t) => {
  const app = await jwtApp(t, { cookie: 'auth' }, { cookie: false })
  const socket = await injectRefused(app, '/ws')
  t.same(socket.messages, [INTERNAL_500])
  t.equal(socket.code, 4500)
  const err = logs.lines.find((line) => line.msg === 'fastify-chanx: the handshake pipeline threw')?.err as { code?: string, message?: string } | undefined
  t.equal(err?.code, 'FST_CHANX_MISSING_DEPENDENCY')
  t.equal(err?.message, 'fastify-chanx: jwtAuthentication({ cookie }) needs @fastify/cookie to be registered before the route is requested')
})

test('protocol: an empty token after the prefix is 401 "Invalid token"; no offered prefix is anonymous', async (t) => {
  const app = await jwtApp(t, { protocol: 'bearer' })
  const empty = await injectRefused(app, '/ws', { headers: { 'sec-websocket-protocol': 'chanx, bearer.' } })
  t.same(empty.messages, [INVALID_TOKEN])
  t.equal(empty.code, 4401)
  const none = await injectRefused(app, '/ws', { headers: { 'sec-websocket-protocol': 'chanx, other.abc' } })
  t.same(none.messages, [NOT_PROVIDED_401])
  t.equal(none.code, 4401)
})
