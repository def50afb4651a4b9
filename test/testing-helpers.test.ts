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
