import { test } from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import chanx, { IsAuthenticated, jwtAuthentication } from '../plugin'
import { closeApp, connect, connectMany } from '../plugin/testing'

async function buildApp () {
  const app = Fastify()
  await app.register(jwt, { secret: 'a-testing-secret-of-32-characters!!' })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated] })
  app.get('/ws/echo', { websocket: true }, (socket, request) => {
    const { sub } = request.user as { sub: string }
    socket.on('message', (data) => {
      const { action, payload } = JSON.parse(data.toString()) as { action: string, payload: unknown }
      socket.send(JSON.stringify({ action: 'echo', payload: { from: sub, action, payload } }))
      socket.send(JSON.stringify({ action: 'complete', payload: null }))
    })
  })
  await app.ready()
  return app
}

test('connect awaits the authentication message and carries the query token', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws/echo', { query: { token: app.jwt.sign({ sub: 'alice' }) } })
  t.same(await client.authentication(), { status_code: 200, status_text: 'OK', data: { detail: 'OK' } })
  client.sendAction('say', { text: 'hi' })
  t.same(await client.receiveUntil('complete'), [
    { action: 'echo', payload: { from: 'alice', action: 'say', payload: { text: 'hi' } } },
    { action: 'complete', payload: null }
  ])
})

test('a refused client reads the refusal and the close code', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws/echo', { headers: { authorization: 'Bearer not-a-token' } })
  t.same(await client.authentication(), { status_code: 401, status_text: 'Unauthorized', data: { detail: 'Invalid token' } })
  t.equal(await client.closed(), 4401)
  t.equal(client.reason, 'Unauthorized')
  await t.rejects(client.receive(50), /closed/)
})

test('several users at once, each with their own messages', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const [alice, bob] = await connectMany(app, [
    { path: '/ws/echo', query: { token: app.jwt.sign({ sub: 'alice' }) } },
    { path: '/ws/echo', headers: { authorization: `Bearer ${app.jwt.sign({ sub: 'bob' })}` } }
  ])
  await alice!.authentication()
  await bob!.authentication()
  bob!.sendAction('say', 'b')
  alice!.sendAction('say', 'a')
  t.match(await alice!.receive(), { payload: { from: 'alice', payload: 'a' } })
  t.match(await bob!.receive(), { payload: { from: 'bob', payload: 'b' } })
})

test('receive rejects after its timeout when nothing arrives', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws/echo', { query: { token: app.jwt.sign({ sub: 'alice' }) }, timeout: 50 })
  await client.authentication()
  await t.rejects(client.receive(), /no message within 50 ms/)
  await t.rejects(client.closed(), /did not close within 50 ms/)
})

test('connect sends Sec-WebSocket-Version as the string \'13\' a real request carries (ws 8.23.1+ refuses the number with 400)', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const seen: unknown[] = []
  app.server.on('upgrade', (request) => { seen.push(request.headers['sec-websocket-version']) })
  const alice = await connect(app, '/ws/echo', { query: { token: app.jwt.sign({ sub: 'alice' }) } })
  await alice.authentication()
  const refused = await connect(app, '/ws/echo')
  t.equal((await refused.authentication()).status_code, 401, 'a refused upgrade too')
  t.same(seen, ['13', '13'])
  t.equal(app.server.listenerCount('upgrade'), 2, 'the header fix does not stay on the server: @fastify/websocket\'s listener and this test\'s')
})

test('connect makes an app that is not ready yet ready itself', async (t) => {
  const app = Fastify()
  await app.register(jwt, { secret: 'a-testing-secret-of-32-characters!!' })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated] })
  app.get('/ws/echo', { websocket: true }, () => {})
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws/echo', { query: { token: app.jwt.sign({ sub: 'alice' }) } })
  t.equal((await client.authentication()).status_code, 200)
})

test('connect rejects within its 5 s default, naming app.ready(), when the app never gets ready', async (t) => {
  const app = Fastify()
  let finishLoading!: () => void
  await app.register(websocket)
  await app.register(chanx)
  void app.register(async () => { await new Promise<void>((resolve) => { finishLoading = resolve }) })
  app.get('/ws', { websocket: true }, () => {})
  const started = Date.now()
  await t.rejects(connect(app, '/ws'), /connect\(\/ws\): app\.ready\(\) did not finish within 5000 ms/)
  const elapsed = Date.now() - started
  t.ok(elapsed >= 4900 && elapsed < 6000, `rejected after ${elapsed} ms`)
  finishLoading()
  await closeApp(app)
})

test('connect rejects within connectTimeout when the upgrade is never answered', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx)
  // A hook that never calls done: the upgrade request is never answered.
  app.get('/ws', { websocket: true, onRequest: (_request, _reply, _done) => {} }, () => {})
  t.teardown(() => closeApp(app))
  await t.rejects(connect(app, '/ws', { connectTimeout: 300 }), /connect\(\/ws\): the upgrade got no answer within 300 ms/)
})
