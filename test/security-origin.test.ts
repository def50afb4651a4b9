import { test } from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import cookie from '@fastify/cookie'
import session from '@fastify/session'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx, { IsAuthenticated, jwtAuthentication, sessionAuthentication, type FastifyChanxOptions } from '../plugin'
import { closeApp } from '../plugin/testing'

const SECRET = 'a-session-secret-of-at-least-32-chars!'

/** An app whose /login sets a session for user 1, with a cookie route and a header-only route. */
async function buildApp (options: FastifyChanxOptions = {}) {
  const app = Fastify()
  await app.register(cookie)
  await app.register(session, { secret: SECRET, cookie: { secure: false } })
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(chanx, options)
  app.get('/login', async (request) => { request.session.set('userId' as never, 1 as never); return 'ok' })
  app.get('/ws/cookie', { websocket: true, authentication: [sessionAuthentication()], permissions: [IsAuthenticated] }, (socket) => socket.send('in'))
  app.get('/ws/header', { websocket: true, authentication: [jwtAuthentication({ cookie: false })], permissions: [IsAuthenticated] }, (socket) => socket.send('in'))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const login = await app.inject('/login')
  const sessionCookie = login.cookies.map((c) => `${c.name}=${c.value}`).join('; ')
  return { app, port, sessionCookie }
}

function handshake (url: string, headers: Record<string, string>): Promise<{ messages: string[], code: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    const messages: string[] = []
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('no close within 3 s')) }, 3000)
    ws.on('message', (data) => {
      messages.push(data.toString())
      if (data.toString() === 'in') ws.close(1000)
    })
    ws.on('close', (code) => { clearTimeout(timer); resolve({ messages, code }) })
    ws.on('error', reject)
  })
}

const ORIGIN_REFUSED = '{"action":"authentication","payload":{"status_code":403,"status_text":"Forbidden","data":{"detail":"Cross-origin WebSocket request refused: this origin is not allowed."}}}'

test('a valid session cookie sent from another origin is refused with 4403', async (t) => {
  const { app, port, sessionCookie } = await buildApp()
  t.teardown(() => closeApp(app))
  const hijack = await handshake(`ws://127.0.0.1:${port}/ws/cookie`, { cookie: sessionCookie, origin: 'https://evil.example' })
  t.same(hijack.messages, [ORIGIN_REFUSED])
  t.equal(hijack.code, 4403)
})

test('the same cookie from the same origin, or without Origin, gets in', async (t) => {
  const { app, port, sessionCookie } = await buildApp()
  t.teardown(() => closeApp(app))
  const sameOrigin = await handshake(`ws://127.0.0.1:${port}/ws/cookie`, { cookie: sessionCookie, origin: `http://127.0.0.1:${port}` })
  t.equal(sameOrigin.messages[1], 'in')
  const noOrigin = await handshake(`ws://127.0.0.1:${port}/ws/cookie`, { cookie: sessionCookie })
  t.equal(noOrigin.messages[1], 'in')
})

test('an opaque "null" origin is refused on a cookie route', async (t) => {
  const { app, port, sessionCookie } = await buildApp()
  t.teardown(() => closeApp(app))
  const sandboxed = await handshake(`ws://127.0.0.1:${port}/ws/cookie`, { cookie: sessionCookie, origin: 'null' })
  t.equal(sandboxed.code, 4403)
})

test('a route that reads no cookie accepts any origin', async (t) => {
  const { app, port } = await buildApp()
  t.teardown(() => closeApp(app))
  const token = app.jwt.sign({ sub: 1 })
  const crossSite = await handshake(`ws://127.0.0.1:${port}/ws/header`, { authorization: `Bearer ${token}`, origin: 'https://other.example' })
  t.equal(crossSite.messages[1], 'in')
})

test('allowedOrigins lists the origins that may connect', async (t) => {
  const { app, port, sessionCookie } = await buildApp({ allowedOrigins: ['https://app.example.com'] })
  t.teardown(() => closeApp(app))
  const listed = await handshake(`ws://127.0.0.1:${port}/ws/cookie`, { cookie: sessionCookie, origin: 'https://APP.example.com' })
  t.equal(listed.messages[1], 'in')
  const sameButUnlisted = await handshake(`ws://127.0.0.1:${port}/ws/cookie`, { cookie: sessionCookie, origin: `http://127.0.0.1:${port}` })
  t.equal(sameButUnlisted.code, 4403)
  const tokenRoute = await handshake(`ws://127.0.0.1:${port}/ws/header`, { authorization: `Bearer ${app.jwt.sign({ sub: 1 })}`, origin: 'https://other.example' })
  t.equal(tokenRoute.code, 4403, 'a list applies to every socket route')
})

test('allowedOrigins as a function decides per request, and "*" allows all', async (t) => {
  const { app, port, sessionCookie } = await buildApp({ allowedOrigins: (origin) => origin.endsWith('.trusted.example') })
  t.teardown(() => closeApp(app))
  t.equal((await handshake(`ws://127.0.0.1:${port}/ws/cookie`, { cookie: sessionCookie, origin: 'https://a.trusted.example' })).messages[1], 'in')
  t.equal((await handshake(`ws://127.0.0.1:${port}/ws/cookie`, { cookie: sessionCookie, origin: 'https://trusted.example.evil' })).code, 4403)

  const open = await buildApp({ allowedOrigins: ['*'] })
  t.teardown(() => closeApp(open.app))
  t.equal((await handshake(`ws://127.0.0.1:${open.port}/ws/cookie`, { cookie: open.sessionCookie, origin: 'https://anywhere.example' })).messages[1], 'in')
})

test('allowedOrigins is checked at registration', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(chanx, { allowedOrigins: ['not an origin'] }) }, { code: 'FST_CHANX_INVALID_OPTION', message: /allowedOrigins/ })
})
