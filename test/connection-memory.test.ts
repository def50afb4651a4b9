import { test } from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import WebSocket from 'ws'
import chanx, { defineSocketRoute, type Authenticator } from '../plugin'
import { ConnectionGuard, type Swept } from '../plugin/connection/guard'
import { credentialExpiry, setCredentialExpiry, takeCredentialExpiry } from '../plugin/core/credentials'
import { closeApp } from '../plugin/testing'

/**
 * What keeps an idle connection small (docs/benchmarks.md "Memory per idle connection") must not change
 * what it does: the sweep's list, the expiry handed over at open, the one 'close' listener per socket, and
 * the router state made on first use.
 */

const alice: Authenticator = { authenticate: () => ({ id: 'alice' }) }

function fake (visits: Array<[string, number]>, name: string, onSweep?: () => void): Swept {
  return { sweepIndex: -1, sweep: (now) => { visits.push([name, now]); onSweep?.() } }
}

test('the sweep visits every tracked connection, also when one is untracked during the sweep', async (t) => {
  const guard = new ConnectionGuard({ heartbeatInterval: 10, idleTimeout: 0, maxBufferedBytes: 0, maxConnectionsPerUser: 0, maxConnectionsPerIp: 0 })
  t.teardown(() => guard.close())
  const visits: Array<[string, number]> = []
  const a = fake(visits, 'a')
  const b = fake(visits, 'b')
  const c = fake(visits, 'c')
  // The list is walked from its end: `d` comes first and untracks `a`, which has not been visited yet.
  const d = fake(visits, 'd', () => { guard.untrack(a); guard.untrack(a) })
  for (const connection of [a, b, c, d]) guard.track(connection)
  guard.track(b)
  t.equal(guard.counts().sockets, 4, 'a second track is ignored')
  while (visits.length < 4) await new Promise((resolve) => setTimeout(resolve, 5))
  const now = visits[0]![1]
  const firstSweep = visits.filter(([, at]) => at === now).map(([name]) => name)
  t.notOk(firstSweep.includes('a'), 'an untracked connection is not visited')
  t.equal(firstSweep.filter((name) => name === 'b').length, 1, 'b is visited once')
  t.equal(firstSweep.filter((name) => name === 'c').length, 1, 'c is visited once: moving `d` into a freed slot skips nobody')
  t.equal(a.sweepIndex, -1)
  t.equal(guard.counts().sockets, 3)
  for (const connection of [b, c, d]) guard.untrack(connection)
  t.equal(guard.counts().sockets, 0)
})

test('takeCredentialExpiry hands the recorded expiry over once', async (t) => {
  const request = {} as FastifyRequest
  t.equal(takeCredentialExpiry(request), undefined)
  setCredentialExpiry(request, 1234.5)
  t.equal(takeCredentialExpiry(request), 1234.5)
  t.equal(credentialExpiry(request), undefined, 'forgotten once taken')
  t.equal(takeCredentialExpiry(request), undefined)
})

test('a socket has ws\'s client-tracking close listener and the connection\'s; ws forgets the client and the route hears the close', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { authentication: [alice], heartbeatInterval: 0 })
  let closeListeners = -1
  let ownListenerCalled = false
  const closes: number[] = []
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { echo: Type.Object({ n: Type.Number() }) },
    handlers: { echo: (message) => ({ action: 'echo', payload: message.payload }) },
    // Never sent a frame: its router state is made at the close, for this hook to run.
    onClose: (_ctx, code) => { closes.push(code) }
  }))
  app.get('/plain', { websocket: true }, (socket) => {
    closeListeners = socket.listenerCount('close')
    socket.on('close', () => { ownListenerCalled = true })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => closeApp(app))
  const port = (app.server.address() as AddressInfo).port

  async function openAndClose (path: string, code: number): Promise<void> {
    const client = new WebSocket(`ws://127.0.0.1:${port}${path}`)
    await new Promise<void>((resolve, reject) => { client.once('message', () => resolve()); client.once('error', reject) })
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
    client.close(code)
    await closed
  }

  await openAndClose('/plain', 4001)
  t.equal(closeListeners, 2, 'ws\'s client-tracking listener stays beside the connection\'s')
  await openAndClose('/ws', 4002)
  for (let i = 0; i < 100 && (closes.length === 0 || app.websocketServer.clients.size > 0); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.ok(ownListenerCalled, 'a listener the handler added is called')
  t.same(closes, [4002], 'onClose ran with the close code for a socket that sent nothing')
  t.equal(app.websocketServer.clients.size, 0, 'ws\'s client tracking forgot both sockets')
})

test('an open socket no longer holds the bytes its upgrade request was read into', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { authentication: [alice], heartbeatInterval: 0 })
  const raws: object[] = []
  const headOf = (raw: object): Buffer | undefined => {
    const symbol = Object.getOwnPropertySymbols(raw).find((s) => s.description === 'ws-head')
    return symbol === undefined ? undefined : (raw as Record<symbol, Buffer>)[symbol]
  }
  let before: Buffer | undefined
  app.addHook('onRequest', (request, _reply, done) => { before = headOf(request.raw); done() })
  app.route(defineSocketRoute({
    url: '/ws',
    messages: {},
    handlers: {},
    onAuthenticated: (ctx) => { raws.push(ctx.request.raw) }
  }))
  app.get('/plain', { websocket: true }, (socket, request) => {
    raws.push(request.raw)
    socket.send('hi')
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => closeApp(app))
  const port = (app.server.address() as AddressInfo).port
  for (const path of ['/ws', '/plain']) {
    const client = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { cookie: 'token=' + 'x'.repeat(500) } })
    await new Promise<void>((resolve, reject) => { client.once('message', () => resolve()); client.once('error', reject) })
    client.close()
  }
  t.ok(before !== undefined && before.buffer.byteLength > 500, 'the head @fastify/websocket stores is a view of the request as read')
  t.equal(raws.length, 2)
  for (const head of raws.map(headOf)) {
    t.ok(head !== undefined && head.length === 0 && head.buffer.byteLength === 0, 'after the upgrade the request keeps an empty head')
  }
})

test('ws\'s own client tracking stays on every socket: a closing server still hears its last client leave', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { authentication: [alice], heartbeatInterval: 0 })
  app.route(defineSocketRoute({ url: '/ws', messages: {}, handlers: {} }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => closeApp(app))
  const port = (app.server.address() as AddressInfo).port
  const wss = app.websocketServer
  const clients = [new WebSocket(`ws://127.0.0.1:${port}/ws`), new WebSocket(`ws://127.0.0.1:${port}/ws`)]
  await Promise.all(clients.map((client) => new Promise<void>((resolve, reject) => { client.once('message', () => resolve()); client.once('error', reject) })))
  t.equal(wss.clients.size, 2)
  for (const socket of wss.clients) t.equal(socket.listenerCount('close'), 2, 'ws\'s client-tracking listener and the connection\'s')
  let serverClosed = false
  // ws's server, once closing, emits 'close' when its last tracked client has gone.
  const closing = new Promise<void>((resolve) => wss.close(() => { serverClosed = true; resolve() }))
  clients[0]!.close()
  for (let i = 0; i < 100 && wss.clients.size > 1; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(wss.clients.size, 1, 'the first client is forgotten')
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(serverClosed, 'not closed while a client remains')
  clients[1]!.close()
  await closing
  t.equal(wss.clients.size, 0)
  t.ok(serverClosed, 'closed once the last one left')
})
