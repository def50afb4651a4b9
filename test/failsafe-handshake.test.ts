import { test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyPluginCallback } from 'fastify'
import cookie from '@fastify/cookie'
import session from '@fastify/session'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx, { IsAuthenticated, jwtAuthentication, sessionAuthentication } from '../plugin'
import {
  INTERNAL_500, JWT_SECRET, NOT_PROVIDED_401, OK_MESSAGE, SESSION_SECRET, buildApp, captureLogs, closeApp,
  injectRefused, injectSocket, listen, realSocket, serverUrl
} from './helpers/handshake'

type Step = 'cookie' | 'session' | 'jwt' | 'chanx'
const PLUGINS: Record<Step, [FastifyPluginCallback<any>, unknown]> = {
  cookie: [cookie as FastifyPluginCallback<any>, {}],
  session: [session as FastifyPluginCallback<any>, { secret: SESSION_SECRET, cookie: { secure: false } }],
  jwt: [jwt as FastifyPluginCallback<any>, { secret: JWT_SECRET }],
  chanx: [chanx as FastifyPluginCallback<any>, {}]
}

function orders (steps: Step[]): Step[][] {
  if (steps.length <= 1) return [steps]
  return steps.flatMap((step, i) => orders([...steps.slice(0, i), ...steps.slice(i + 1)]).map((rest) => [step, ...rest]))
}

test('fastify-chanx works in every order with @fastify/jwt, @fastify/session and @fastify/cookie', async (t) => {
  // @fastify/session itself needs @fastify/cookie first; every other order is allowed.
  const allowed = orders(['cookie', 'session', 'jwt', 'chanx']).filter((order) => order.indexOf('cookie') < order.indexOf('session'))
  t.equal(allowed.length, 12)
  for (const order of allowed) {
    const app = Fastify()
    try {
      await app.register(websocket)
      for (const step of order) await app.register(PLUGINS[step][0], PLUGINS[step][1] as never)
      app.get('/ws', { websocket: true, authentication: [jwtAuthentication(), sessionAuthentication()], permissions: [IsAuthenticated] }, (socket, request) => {
        socket.send(`user=${JSON.stringify(request.user)}`)
      })
      app.post('/login', async (request) => { (request.session as unknown as { set: (key: string, value: unknown) => void }).set('userId', 'alice'); return 'in' })
      await app.ready()
      const anonymous = await injectRefused(app, '/ws')
      t.same([anonymous.messages, anonymous.code], [[NOT_PROVIDED_401], 4401], `${order.join(', ')}: anonymous refused`)
      const token = app.jwt.sign({ sub: 'bob' })
      const byToken = await injectSocket(app, '/ws', { headers: { authorization: `Bearer ${token}` } })
      const tokenMessages = await byToken.waitForMessages(2)
      t.equal(tokenMessages[0], OK_MESSAGE)
      t.match(tokenMessages[1], /^user=\{"sub":"bob"/, `${order.join(', ')}: jwt`)
      byToken.socket.terminate()
      const login = await app.inject({ method: 'POST', url: '/login' })
      const sessionCookie = login.cookies.map((c) => `${c.name}=${c.value}`).join('; ')
      const bySession = await injectSocket(app, '/ws', { headers: { cookie: sessionCookie } })
      t.same(await bySession.waitForMessages(2), [OK_MESSAGE, 'user="alice"'], `${order.join(', ')}: session`)
      bySession.socket.terminate()
    } finally {
      await closeApp(app)
    }
  }
})

test('fastify-chanx before @fastify/websocket fails with a catchable FST_CHANX_MISSING_WEBSOCKET', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(chanx) }, { code: 'FST_CHANX_MISSING_WEBSOCKET', message: /register @fastify\/websocket before fastify-chanx/ })
})

test('the HEAD twin of a handler + wsHandler route runs the pipeline', async (t) => {
  const app = await buildApp(t)
  let served = 0
  app.route({
    method: 'GET',
    url: '/both',
    authentication: [jwtAuthentication()],
    permissions: [IsAuthenticated],
    handler: async (_request, reply) => { served++; reply.header('x-secret', 'yes'); return 'page' },
    wsHandler: (socket) => socket.close()
  })
  await app.ready()
  const get = await app.inject('/both')
  t.equal(get.statusCode, 401)
  const head = await app.inject({ method: 'HEAD', url: '/both' })
  t.equal(head.statusCode, 401, 'HEAD is refused like GET')
  t.equal(head.headers['x-secret'], undefined)
  t.equal(head.headers['www-authenticate'], 'Bearer realm="api"')
  t.equal(served, 0, 'the HTTP handler never ran')
  const token = app.jwt.sign({ sub: 'bob' })
  const allowed = await app.inject({ method: 'HEAD', url: '/both', headers: { authorization: `Bearer ${token}` } })
  t.equal(allowed.statusCode, 200)
  t.equal(allowed.headers['x-secret'], 'yes')
})

test('HEAD on a socket route keeps tokens out of the logs', async (t) => {
  const { lines, logger } = captureLogs()
  logger.level = 'info'
  const app = await buildApp(t, { server: { logger } })
  app.get('/ws', { websocket: true, authentication: [jwtAuthentication({ query: 'access' })] }, (socket) => socket.close())
  await app.ready()
  await app.inject({ method: 'HEAD', url: '/ws?token=secret-one&access=secret-two' })
  const text = JSON.stringify(lines)
  t.ok(text.includes('[REDACTED]'), 'the request was logged, redacted')
  t.notOk(text.includes('secret-one'))
  t.notOk(text.includes('secret-two'))
})

/** A socket route whose only authenticator returns `value`, with IsAuthenticated. */
async function appReturning (t: Parameters<typeof buildApp>[0], value: unknown): Promise<{ app: FastifyInstance, lines: Array<Record<string, unknown>> }> {
  const { lines, logger } = captureLogs()
  const app = await buildApp(t, { auth: false, server: { logger } })
  app.get('/ws', { websocket: true, authentication: [{ authenticate: () => value as never, challenge: 'Key' }], permissions: [IsAuthenticated] }, (socket) => socket.close())
  app.get('/api', { authentication: [{ authenticate: () => value as never }], permissions: [IsAuthenticated] }, async () => 'in')
  await app.ready()
  return { app, lines }
}

test('an authenticator that returns false is no user: anonymous is refused', async (t) => {
  const { app } = await appReturning(t, false)
  const socket = await injectRefused(app, '/ws')
  t.same([socket.messages, socket.code], [[NOT_PROVIDED_401], 4401])
  const http = await app.inject('/api')
  t.equal(http.statusCode, 403)
  t.equal(http.body, '{"detail":"Authentication credentials were not provided."}')
})

test('an authenticator that returns what cannot be a user answers 500 and logs FST_CHANX_INVALID_USER', async (t) => {
  const impossible: Array<[string, unknown]> = [
    ['true', true], ['an empty string', ''], ['NaN', NaN], ['Infinity', Infinity], ['a function', () => 'user'], ['a Symbol', Symbol('user')]
  ]
  for (const [name, value] of impossible) {
    const { app, lines } = await appReturning(t, value)
    const socket = await injectRefused(app, '/ws')
    t.same([socket.messages, socket.code], [[INTERNAL_500], 4500], name)
    const http = await app.inject('/api')
    t.equal(http.statusCode, 500, `${name} over HTTP`)
    t.ok(lines.some((line) => JSON.stringify(line).includes('FST_CHANX_INVALID_USER')), `${name} is logged`)
  }
  for (const [name, value] of [['0', 0], ['0n', 0n], ['a string', 'alice'], ['an object', { id: 1 }]] as Array<[string, unknown]>) {
    const { app } = await appReturning(t, value)
    t.equal((await app.inject('/api')).statusCode, 200, `${name} is a user`)
  }
})

test('a deactivated user whose loadUser returns false is refused (session and jwt)', async (t) => {
  const app = await buildApp(t)
  app.get('/session', { authentication: [sessionAuthentication({ loadUser: () => false })], permissions: [IsAuthenticated] }, async () => 'in')
  app.get('/jwt', { authentication: [jwtAuthentication({ loadUser: () => false })], permissions: [IsAuthenticated] }, async () => 'in')
  app.post('/login', async (request) => { (request.session as unknown as { set: (key: string, value: unknown) => void }).set('userId', 'alice'); return 'in' })
  await app.ready()
  const login = await app.inject({ method: 'POST', url: '/login' })
  const sessionCookie = login.cookies.map((c) => `${c.name}=${c.value}`).join('; ')
  const bySession = await app.inject({ url: '/session', headers: { cookie: sessionCookie } })
  t.equal(bySession.statusCode, 403)
  t.equal(bySession.body, '{"detail":"Authentication credentials were not provided."}')
  const byToken = await app.inject({ url: '/jwt', headers: { authorization: `Bearer ${app.jwt.sign({ sub: 'bob' })}` } })
  t.equal(byToken.statusCode, 401)
  t.equal(byToken.body, '{"detail":"User not found"}')
})

test('a mis-cased credential subprotocol is read and never echoed', async (t) => {
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, authentication: [jwtAuthentication({ protocol: 'bearer' })], permissions: [IsAuthenticated] }, (socket, request) => {
    socket.send(`user=${(request.user as { sub: string }).sub}`)
  })
  await listen(app)
  const token = app.jwt.sign({ sub: 'bob' })
  for (const offered of [[`Bearer.${token}`, 'chanx'], [`BEARER.${token}`, 'chanx'], ['chanx', `bEaReR.${token}`]]) {
    const ws = new WebSocket(serverUrl(app, '/ws'), offered, { handshakeTimeout: 2000 })
    t.teardown(() => ws.terminate())
    const messages: string[] = []
    ws.on('message', (data) => messages.push(String(data)))
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
    t.not(ws.protocol.toLowerCase().startsWith('bearer.'), true, `${offered.join(', ')}: the token is not echoed`)
    t.equal(ws.protocol, 'chanx', `${offered.join(', ')}: the other protocol is selected`)
    await new Promise<void>((resolve) => { const poll = (): void => { if (messages.length >= 2) resolve(); else setTimeout(poll, 10) }; poll() })
    t.same(messages, [OK_MESSAGE, 'user=bob'], `${offered.join(', ')}: authenticated by the token`)
    ws.terminate()
  }
})

test('same-origin compares the scheme: an https Origin may not open a plain ws socket, and the reverse behind a proxy', async (t) => {
  const app = await buildApp(t, { server: { trustProxy: true } })
  app.get('/ws', { websocket: true, authentication: [sessionAuthentication()] }, (socket) => socket.close())
  await listen(app)
  const host = new URL(serverUrl(app, '/')).host
  const refused = realSocket(t, app, '/ws', { headers: { origin: `https://${host}` } })
  await refused.opened
  t.equal(await refused.closed(), 4403, 'https://host on ws:// is cross-origin')
  t.match(refused.messages[0], /Cross-origin WebSocket request refused/)
  const allowed = realSocket(t, app, '/ws', { headers: { origin: `http://${host}` } })
  await allowed.opened
  t.equal((await allowed.waitForMessages(1))[0], OK_MESSAGE, 'http://host on ws:// is same-origin')
  const proxied = realSocket(t, app, '/ws', { headers: { origin: `https://${host}`, 'x-forwarded-proto': 'https' } })
  await proxied.opened
  t.equal((await proxied.waitForMessages(1))[0], OK_MESSAGE, 'behind a TLS proxy https://host is same-origin')
  const downgraded = realSocket(t, app, '/ws', { headers: { origin: `http://${host}`, 'x-forwarded-proto': 'https' } })
  await downgraded.opened
  t.equal(await downgraded.closed(), 4403, 'behind a TLS proxy http://host is cross-origin')
})
