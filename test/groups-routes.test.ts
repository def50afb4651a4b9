import { test } from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import WebSocket from 'ws'
import chanx, { defineSocketRoute, jwtAuthentication, IsAuthenticated, type FastifyChanxOptions } from '../plugin'
import { closeApp, connect } from '../plugin/testing'

const SECRET = 'a-groups-secret-of-at-least-32-chars!'

async function buildApp (options: FastifyChanxOptions = {}) {
  const app = Fastify()
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated], ...options })
  app.route(defineSocketRoute({
    url: '/ws/rooms/:roomId',
    groups: (ctx) => [`room:${ctx.params.roomId}`],
    messages: {
      chat: Type.Object({ text: Type.String() }),
      shout: Type.Object({ text: Type.String() }),
      join: Type.Object({ room: Type.String() }),
      leave: Type.Object({ room: Type.String() }),
      whereami: Type.Null()
    },
    events: { announce: Type.Object({ text: Type.String() }) },
    eventHandlers: {
      announce: (payload, ctx) => ({ action: 'announcement', payload: { text: payload.text, room: ctx.params.roomId } })
    },
    handlers: {
      chat: (message, ctx) => ctx.broadcast({ action: 'chat', payload: message.payload }),
      shout: (message, ctx) => ctx.broadcast({ action: 'chat', payload: message.payload }, { excludeSelf: false }),
      join: async (message, ctx) => { await ctx.join(`room:${message.payload.room}`); return { action: 'groups', payload: ctx.groups } },
      leave: async (message, ctx) => { await ctx.leave(`room:${message.payload.room}`); return { action: 'groups', payload: ctx.groups } },
      whereami: (_message, ctx) => ({ action: 'groups', payload: ctx.groups })
    }
  }))
  await app.ready()
  return app
}

const token = (app: Awaited<ReturnType<typeof buildApp>>, sub: string) => ({ token: app.jwt.sign({ sub }) })

test('a broadcast reaches every member of the group once, with is_mine and is_current', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const alice = await connect(app, '/ws/rooms/1', { query: token(app, 'alice') })
  const aliceTab = await connect(app, '/ws/rooms/1', { query: token(app, 'alice') })
  const bob = await connect(app, '/ws/rooms/1', { query: token(app, 'bob') })
  const elsewhere = await connect(app, '/ws/rooms/2', { query: token(app, 'carol') })
  for (const client of [alice, aliceTab, bob, elsewhere]) await client.authentication()

  alice.sendAction('chat', { text: 'hi' })
  t.same(await aliceTab.receive(), { action: 'chat', payload: { text: 'hi' }, is_mine: true, is_current: false })
  t.same(await bob.receive(), { action: 'chat', payload: { text: 'hi' }, is_mine: false, is_current: false })
  await t.rejects(alice.receive(100), /no message/, 'excludeSelf is on by default')
  await t.rejects(elsewhere.receive(100), /no message/, 'other groups hear nothing')

  alice.sendAction('shout', { text: 'all' })
  t.same(await alice.receive(), { action: 'chat', payload: { text: 'all' }, is_mine: true, is_current: true })
  t.same(await bob.receive(), { action: 'chat', payload: { text: 'all' }, is_mine: false, is_current: false })
})

test('groups are joined before the authentication message: what is broadcast meanwhile follows it', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx)
  app.get('/ws', {
    websocket: true,
    groups: () => ['lobby'],
    // Runs after the handshake joined the group and before the socket opens.
    preHandler: async () => { await app.chanx.broadcast('lobby', { action: 'early', payload: null }) }
  }, (socket) => { socket.send('handler') })
  await app.ready()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  t.same((await client.receive()).action, 'authentication')
  t.same(await client.receive(), { action: 'early', payload: null, is_mine: false, is_current: false })
  t.same(await client.receive(), { raw: 'handler' })
})

test('joining and leaving at run time from a handler', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const alice = await connect(app, '/ws/rooms/1', { query: token(app, 'alice') })
  const bob = await connect(app, '/ws/rooms/2', { query: token(app, 'bob') })
  await alice.authentication()
  await bob.authentication()
  alice.sendAction('join', { room: '2' })
  t.same(await alice.receive(), { action: 'groups', payload: ['room:1', 'room:2'] })
  bob.sendAction('chat', { text: 'to room 2' })
  t.match(await alice.receive(), { action: 'chat', payload: { text: 'to room 2' } })
  alice.sendAction('leave', { room: '2' })
  t.same(await alice.receive(), { action: 'groups', payload: ['room:1'] })
  bob.sendAction('chat', { text: 'gone' })
  await t.rejects(alice.receive(100), /no message/)
})

test('app.chanx reaches groups and users from anywhere, and disconnects a user everywhere', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const alice1 = await connect(app, '/ws/rooms/1', { query: token(app, 'alice') })
  const alice2 = await connect(app, '/ws/rooms/2', { query: token(app, 'alice') })
  const bob = await connect(app, '/ws/rooms/1', { query: token(app, 'bob') })
  for (const client of [alice1, alice2, bob]) await client.authentication()

  await app.chanx.broadcast('room:1', { action: 'news', payload: 1 })
  t.same(await alice1.receive(), { action: 'news', payload: 1, is_mine: false, is_current: false })
  t.same(await bob.receive(), { action: 'news', payload: 1, is_mine: false, is_current: false })

  await app.chanx.sendToUser('alice', { action: 'dm', payload: 'psst' })
  t.same(await alice1.receive(), { action: 'dm', payload: 'psst' })
  t.same(await alice2.receive(), { action: 'dm', payload: 'psst' })
  await t.rejects(bob.receive(100), /no message/)

  t.equal(await app.chanx.groupSize('room:1'), 2)

  await app.chanx.sendEvent('room:1', 'announce', { text: 'maintenance' })
  t.same(await alice1.receive(), { action: 'announcement', payload: { text: 'maintenance', room: '1' } })
  t.same(await bob.receive(), { action: 'announcement', payload: { text: 'maintenance', room: '1' } })
  await app.chanx.sendEvent('room:1', 'announce', { text: 42 })
  await t.rejects(bob.receive(100), /no message/, 'an event that fails its schema is not handled')

  await app.chanx.disconnectUser({ sub: 'alice' }, 4401, 'Logged out')
  t.equal(await alice1.closed(), 4401)
  t.equal(await alice2.closed(), 4401)
  t.equal(alice1.reason, 'Logged out')
  await t.rejects(app.chanx.sendToUser(null, { action: 'x' }), { code: 'FST_CHANX_INVALID_OPTION' })
})

test('a closed socket leaves its groups, however it closes', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const open = (sub: string) => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/rooms/9?token=${app.jwt.sign({ sub })}`)
    ws.once('message', () => resolve(ws))
    ws.once('error', reject)
  })
  const clean = await open('alice')
  const abrupt = await open('bob')
  t.equal(await app.chanx.groupSize('room:9'), 2)
  clean.close(1000)
  abrupt.terminate()
  const deadline = Date.now() + 2000
  while (app.chanx.hub.localSize('room:9') > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(await app.chanx.groupSize('room:9'), 0)
})

test('groups(ctx) that throws refuses the socket with 4500', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(websocket)
  await app.register(chanx)
  app.get('/ws', { websocket: true, groups: () => { throw new Error('no groups for you') } }, () => {})
  app.get('/bad', { websocket: true, groups: () => ['ok', 42 as unknown as string] }, () => {})
  await app.ready()
  t.teardown(() => closeApp(app))
  for (const path of ['/ws', '/bad']) {
    const client = await connect(app, path)
    t.same(await client.authentication(), { status_code: 500, status_text: 'Internal Server Error', data: { detail: 'Internal server error' } })
    t.equal(await client.closed(), 4500)
  }
})

test('groups and events are checked at registration', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx)
  t.teardown(() => app.close())
  t.throws(() => app.get('/a', { websocket: true, groups: ['x'] as never }, () => {}), { code: 'FST_CHANX_INVALID_OPTION', message: /groups must be a function/ })
  t.throws(() => app.get('/b', { groups: () => ['x'], permissions: [] }, async () => 'x'), { message: /only for WebSocket routes/ })
  t.throws(() => app.get('/c', { websocket: true, events: { e: Type.Null() } }, () => {}), { message: /event "e" has a schema but no handler/ })
  t.throws(() => app.get('/d', { websocket: true, eventHandlers: { e: () => {} } }, () => {}), { message: /eventHandlers needs events/ })
})
