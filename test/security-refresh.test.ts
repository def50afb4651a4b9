import { test } from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { IsAuthenticated, defineSocketRoute, jwtAuthentication } from '../plugin'
import { closeApp, connect } from '../plugin/testing'

const SECRET = 'a-refresh-secret-of-at-least-32-chars'
const OK = { action: 'authentication', payload: { status_code: 200, status_text: 'OK', data: { detail: 'OK' } } }

async function buildApp () {
  const app = Fastify()
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated] })
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { whoami: Type.Null() },
    handlers: { whoami: (_message, ctx) => ({ action: 'me', payload: ctx.user }) }
  }))
  await app.ready()
  return app
}

const seconds = (n: number) => Math.floor(Date.now() / 1000) + n

test('a fresh token sent in an authenticate action moves the expiry', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws', { query: { token: app.jwt.sign({ sub: 'alice', exp: seconds(2) }) }, timeout: 4000 })
  await client.authentication()
  client.sendAction('authenticate', { token: app.jwt.sign({ sub: 'alice', exp: seconds(3600), role: 'refreshed' }) })
  t.same(await client.receive(), OK)
  client.sendAction('whoami')
  t.match(await client.receive(), { action: 'me', payload: { sub: 'alice', role: 'refreshed' } }, 'ctx.user is the refreshed one')
  await t.rejects(client.closed(3000), /did not close/, 'the old expiry passed and the socket stayed open')
})

test('a bad token in an authenticate action closes the socket with 4401', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws', { query: { token: app.jwt.sign({ sub: 'alice' }) } })
  await client.authentication()
  client.sendAction('authenticate', { token: 'not-a-jwt' })
  t.same(await client.receive(), { action: 'authentication', payload: { status_code: 401, status_text: 'Unauthorized', data: { detail: 'Invalid token' } } })
  t.equal(await client.closed(), 4401)
})

test("another user's token cannot take over the socket", async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws', { query: { token: app.jwt.sign({ sub: 'alice' }) } })
  await client.authentication()
  client.sendAction('authenticate', { token: app.jwt.sign({ sub: 'mallory' }) })
  t.same(await client.receive(), { action: 'authentication', payload: { status_code: 401, status_text: 'Unauthorized', data: { detail: 'The token belongs to another user' } } })
  t.equal(await client.closed(), 4401)
})

test('an authenticate action without a token closes with 4401; frames after it wait for it', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws', { query: { token: app.jwt.sign({ sub: 'alice' }) } })
  await client.authentication()
  client.sendAction('authenticate', {})
  client.sendAction('whoami')
  t.match(await client.receive(), { payload: { status_code: 401 } })
  t.equal(await client.closed(), 4401)
  t.same(client.messages.filter((m) => m.action === 'me'), [], 'the frame queued behind the refusal was never handled')
})
