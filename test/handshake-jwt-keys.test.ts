import { createHmac, generateKeyPairSync } from 'node:crypto'
import { test } from 'tap'
import Fastify from 'fastify'
import cookie from '@fastify/cookie'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import chanx, { IsAuthenticated, jwtAuthentication } from '../plugin'
import { OK_MESSAGE, captureLogs, closeApp, injectRefused, injectSocket, refusal, unsignedToken } from './helpers/handshake'

const INVALID_TOKEN = refusal(401, 'Unauthorized', 'Invalid token')

const { publicKey, privateKey } = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
})

/** An app whose @fastify/jwt signs RS256 with a key pair: the public key is public, as it would be in production. */
async function rsaApp (t: { teardown (fn: () => unknown): void }, logger?: ReturnType<typeof captureLogs>['logger']) {
  const app = Fastify(logger === undefined ? {} : { logger })
  t.teardown(() => closeApp(app))
  await app.register(cookie)
  await app.register(jwt, { secret: { private: privateKey, public: publicKey }, sign: { algorithm: 'RS256' }, cookie: { cookieName: 'token', signed: false } })
  await app.register(websocket)
  await app.register(chanx)
  const handled: unknown[] = []
  app.get('/ws', { websocket: true, authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated] }, (socket, request) => {
    handled.push(request.user)
    socket.send('in')
  })
  app.get('/api', { authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated] }, async () => 'in')
  await app.ready()
  return { app, handled }
}

/** HS256 over the header and payload, with `key` as the HMAC secret. */
function hs256 (payload: Record<string, unknown>, key: string): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(payload)}`
  return `${unsigned}.${createHmac('sha256', key).update(unsigned).digest('base64url')}`
}

test('an RS256 token signed with the private key authenticates', async (t) => {
  const { app, handled } = await rsaApp(t)
  const socket = await injectSocket(app, '/ws', { headers: { authorization: `Bearer ${app.jwt.sign({ sub: 'alice' })}` } })
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, 'in'])
  t.match(handled, [{ sub: 'alice' }])
})

test('an HS256 token signed with the RSA public key (algorithm confusion) is 401 "Invalid token", never 500', async (t) => {
  const { lines, logger } = captureLogs()
  const { app, handled } = await rsaApp(t, logger)
  const confused = hs256({ sub: 'mallory', iat: Math.floor(Date.now() / 1000) }, publicKey)
  for (const headers of [{ authorization: `Bearer ${confused}` }, { cookie: `token=${confused}` }] as Array<Record<string, string>>) {
    const socket = await injectRefused(app, '/ws', { headers })
    t.same(socket.messages, [INVALID_TOKEN], Object.keys(headers)[0])
    t.equal(socket.code, 4401)
  }
  const byQuery = await injectRefused(app, `/ws?token=${confused}`)
  t.same(byQuery.messages, [INVALID_TOKEN])
  t.equal(byQuery.code, 4401)
  const http = await app.inject({ url: '/api', headers: { authorization: `Bearer ${confused}` } })
  t.equal(http.statusCode, 401)
  t.equal(http.body, '{"detail":"Invalid token"}')
  t.equal(http.headers['www-authenticate'], 'Bearer realm="api"')
  t.same(handled, [])
  t.same(lines, [], 'a bad token is not a server error: nothing logged at error level')
})

test('an HS256 token signed with an arbitrary key and an alg:none token are refused by the RS256 app', async (t) => {
  const { app, handled } = await rsaApp(t)
  for (const token of [hs256({ sub: 'mallory' }, 'some-other-key'), unsignedToken({ sub: 'mallory' })]) {
    const socket = await injectRefused(app, '/ws', { headers: { authorization: `Bearer ${token}` } })
    t.same(socket.messages, [INVALID_TOKEN])
    t.equal(socket.code, 4401)
  }
  t.same(handled, [])
})
