import { test } from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { IsAuthenticated, defineSocketRoute, jwtAuthentication, type Authenticator } from '../plugin'
import { closeApp, connect } from '../plugin/testing'

const SECRET = 'a-lifecycle-secret-of-at-least-32-chars'
const OK = { action: 'authentication', payload: { status_code: 200, status_text: 'OK', data: { detail: 'OK' } } }
const seconds = (n: number): number => Math.floor(Date.now() / 1000) + n

/** An app whose socket route takes a JWT from `?token=` and lets in any authenticated user. */
async function jwtSocketApp (t: { teardown (fn: () => unknown): void }) {
  const app = Fastify()
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated] })
  app.get('/ws', { websocket: true }, () => {})
  await app.ready()
  t.teardown(() => closeApp(app))
  return app
}

test('a re-authentication that yields another user closes the socket with 4401', async (t) => {
  let who = 'alice'
  const current: Authenticator = { authenticate: () => ({ id: who }) }
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { authentication: [current], reauthenticateInterval: 50 })
  app.get('/ws', { websocket: true, groups: () => ['room'] }, () => {})
  await app.ready()
  t.teardown(() => closeApp(app))

  const client = await connect(app, '/ws', { timeout: 2000 })
  t.same(await client.receive(), OK)
  who = 'mallory'
  t.same(await client.receive(), {
    action: 'authentication',
    payload: { status_code: 401, status_text: 'Unauthorized', data: { detail: 'The credentials belong to another user' } }
  })
  t.equal(await client.closed(), 4401)
})

test('after an in-band refresh, reauthenticateInterval verifies the refreshed token, not the handshake\'s', async (t) => {
  const app = Fastify()
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(chanx, {
    authentication: [jwtAuthentication({ query: 'token' })],
    permissions: [IsAuthenticated],
    reauthenticateInterval: 100
  })
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { whoami: Type.Null() },
    handlers: { whoami: (_message, ctx) => ({ action: 'me', payload: ctx.user }) }
  }))
  await app.ready()
  t.teardown(() => closeApp(app))

  const client = await connect(app, '/ws', { query: { token: app.jwt.sign({ sub: 'alice', exp: seconds(2) }) }, timeout: 4000 })
  t.same(await client.receive(), OK)
  client.sendAction('authenticate', { token: app.jwt.sign({ sub: 'alice', exp: seconds(3600), role: 'refreshed' }) })
  t.same(await client.receive(), OK)
  await t.rejects(client.closed(3000), /did not close/, 'the handshake token expired and the socket stayed open')
  client.sendAction('whoami')
  t.match(await client.receive(), { action: 'me', payload: { sub: 'alice', role: 'refreshed' } }, 'ctx.user is still the refreshed one')
})

test('JWT sockets arm no timer of their own for their expiry', async (t) => {
  const app = await jwtSocketApp(t)

  const original = globalThis.setTimeout
  let longTimers = 0
  globalThis.setTimeout = ((...args: unknown[]) => {
    if (typeof args[1] === 'number' && args[1] > 60_000) longTimers++
    return Reflect.apply(original, globalThis, args)
  }) as typeof setTimeout
  t.teardown(() => { globalThis.setTimeout = original })

  // A one-hour token and a 30-day one (past setTimeout's 24.8-day range).
  for (const exp of [seconds(3600), seconds(30 * 24 * 3600)]) {
    for (let i = 0; i < 5; i++) {
      const client = await connect(app, '/ws', { query: { token: app.jwt.sign({ sub: `user${i}`, exp }) } })
      t.equal((await client.authentication()).status_code, 200)
    }
  }
  globalThis.setTimeout = original
  t.equal(longTimers, 0, 'no per-socket expiry timer')
})

test('a 30-day token keeps its socket open across sweeps', async (t) => {
  const app = await jwtSocketApp(t)
  const client = await connect(app, '/ws', { query: { token: app.jwt.sign({ sub: 'alice', exp: seconds(30 * 24 * 3600) }) }, timeout: 1500 })
  await client.authentication()
  await t.rejects(client.closed(), /did not close/)
})
