import { test } from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import WebSocket from 'ws'
import chanx, { type Authenticator, type FastifyChanxOptions, type SocketContext } from '../plugin'
import { closeApp, connect } from '../plugin/testing'

const alice: Authenticator = { authenticate: () => ({ id: 'alice' }) }
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

function firstMessage (url: string): Promise<{ ws: WebSocket, message: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.once('message', (data) => resolve({ ws, message: JSON.parse(data.toString()) }))
    ws.once('error', reject)
  })
}

test('a client that resets while groups() is pending leaves no group membership and no connection slot', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { authentication: [alice], maxConnectionsPerUser: 1 })
  let pendingGroups = deferred<string[]>()
  const groupsCalled = deferred()
  app.get('/ws', {
    websocket: true,
    groups: () => { groupsCalled.resolve(); return pendingGroups.promise }
  }, () => {})
  const port = await listen(app)
  t.teardown(() => closeApp(app))

  const client = new WebSocket(`ws://127.0.0.1:${port}/ws`)
  client.on('error', () => {})
  await groupsCalled.promise
  // A TCP reset (RST), which the server sees at once: the socket never opens there.
  ;(client as unknown as { _req: { socket: { resetAndDestroy(): void } } })._req.socket.resetAndDestroy()
  await sleep(100)
  pendingGroups.resolve(['room'])
  await sleep(100)
  t.equal(await app.chanx.groupSize('room'), 0, 'the dropped client is in no group')

  pendingGroups = deferred<string[]>()
  pendingGroups.resolve(['room'])
  const { ws, message } = await firstMessage(`ws://127.0.0.1:${port}/ws`)
  t.teardown(() => ws.terminate())
  t.same(message, { action: 'authentication', payload: { status_code: 200, status_text: 'OK', data: { detail: 'OK' } } },
    'the user\'s only slot was given back')
  t.equal(await app.chanx.groupSize('room'), 1)
})

test('ctx.join after the socket closed resolves and does not put it back in the group', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { authentication: [alice] })
  let context: SocketContext | undefined
  const closed = deferred()
  app.get('/ws', {
    websocket: true,
    messages: { hello: Type.Null() },
    handlers: { hello: (_message, ctx) => { context = ctx } },
    onClose: () => { closed.resolve() }
  }, () => {})
  const port = await listen(app)
  t.teardown(() => closeApp(app))

  const { ws } = await firstMessage(`ws://127.0.0.1:${port}/ws`)
  ws.send(JSON.stringify({ action: 'hello', payload: null }))
  // eslint-disable-next-line no-unmodified-loop-condition -- the route's handler sets it
  while (context === undefined) await sleep(10)
  ws.close()
  await closed.promise
  await context.join('late')
  t.equal(await app.chanx.groupSize('late'), 0, 'a closed socket is in no group')
  t.same(context.groups, [])
})

test('frames over maxQueuedFrames close the socket with 1008 "Too many pending messages"', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { rateLimit: false })
  const stuck = deferred()
  let calls = 0
  app.get('/ws', {
    websocket: true,
    maxQueuedFrames: 3,
    messages: { work: Type.Null() },
    handlers: { work: async () => { calls++; await stuck.promise } }
  }, () => {})
  const port = await listen(app)
  t.teardown(() => { stuck.resolve(); return closeApp(app) })

  const { ws } = await firstMessage(`ws://127.0.0.1:${port}/ws`)
  const closedWith = new Promise<[number, string]>((resolve) => ws.once('close', (code, reason) => resolve([code, reason.toString()])))
  // One in flight, three waiting, the fifth is one too many.
  for (let i = 0; i < 5; i++) ws.send(JSON.stringify({ action: 'work', payload: null }))
  t.same(await closedWith, [1008, 'Too many pending messages'])
  t.equal(calls, 1, 'only the first frame reached its handler')
})

test('maxQueuedFrames is checked at registration', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(chanx, { maxQueuedFrames: -1 }) }, { code: 'FST_CHANX_INVALID_OPTION', message: /maxQueuedFrames/ })
})

test('a slow reader that asks for large replies is cut at maxBufferedBytes, and its socket is gone at once', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  const limit = 256 * 1024
  await app.register(chanx, { rateLimit: false, maxBufferedBytes: limit, heartbeatInterval: 0 })
  const big = 'x'.repeat(128 * 1024)
  let peak = 0
  let server: WebSocket | undefined
  app.get('/ws', {
    websocket: true,
    messages: { big: Type.Null() },
    handlers: {
      big: (_message, ctx) => {
        server = ctx.socket as unknown as WebSocket
        peak = Math.max(peak, server.bufferedAmount)
        return { action: 'big', payload: big }
      }
    }
  }, () => {})
  const port = await listen(app)
  t.teardown(() => closeApp(app))

  const { ws } = await firstMessage(`ws://127.0.0.1:${port}/ws`)
  t.teardown(() => ws.terminate())
  // The client stops reading: the kernel buffers fill, then ws buffers what the server sends.
  ;(ws as unknown as { _socket: { pause(): void } })._socket.pause()
  for (let i = 0; i < 200; i++) ws.send(JSON.stringify({ action: 'big', payload: null }))
  const started = Date.now()
  // eslint-disable-next-line no-unmodified-loop-condition -- the route's handler sets it
  while ((server === undefined || server.readyState !== WebSocket.CLOSED) && Date.now() - started < 1500) await sleep(10)
  t.equal(server?.readyState, WebSocket.CLOSED, 'the server socket is gone well before ws\'s 30 s close timeout')
  t.ok(peak <= limit + big.length + 1024, `buffered output stayed bounded (peak ${peak} bytes)`)
})

test('output that waits for the socket to open is bounded by maxBufferedBytes: over it the socket closes with 1013', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { authentication: [alice], maxBufferedBytes: 64 * 1024 })
  const chunk = 'y'.repeat(16 * 1024)
  app.get('/ws', {
    websocket: true,
    groups: () => ['room'],
    // Runs after the handshake joined the groups and before the socket opens.
    preHandler: async () => {
      for (let i = 0; i < 20; i++) await app.chanx.broadcast('room', { action: 'news', payload: chunk })
    }
  }, () => {})
  await app.ready()
  t.teardown(() => closeApp(app))

  const client = await connect(app, '/ws')
  t.equal((await client.authentication()).status_code, 200)
  t.equal(await client.closed(), 1013)
  t.equal(client.messages.filter((m) => m.action === 'news').length, 0, 'nothing of the overflowing backlog was sent')
})

async function timeoutApp (options: FastifyChanxOptions, authenticate: Authenticator['authenticate'], rejectUpgrade = false) {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { authentication: [{ authenticate }], maxConnectionsPerUser: 1, ...options })
  app.get('/ws', { websocket: true, rejectUpgrade, groups: () => ['room'] }, () => {})
  await app.ready()
  return app
}

test('a handshake that does not settle within handshakeTimeout is refused 4503 "Handshake timed out", and a late one admits nothing', async (t) => {
  let late = deferred<unknown>()
  const app = await timeoutApp({ handshakeTimeout: 100 }, () => late.promise)
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  t.same(await client.receive(), {
    action: 'authentication',
    payload: { status_code: 503, status_text: 'Service Unavailable', data: { detail: 'Handshake timed out' } }
  })
  t.equal(await client.closed(), 4503)

  late.resolve({ id: 'alice' })
  await sleep(50)
  t.equal(await app.chanx.groupSize('room'), 0, 'the late pipeline joined no group')
  late = deferred<unknown>()
  late.resolve({ id: 'alice' })
  const again = await connect(app, '/ws')
  t.equal((await again.authentication()).status_code, 200, 'and took no slot')
})

test('handshakeTimeout answers an HTTP 503 with rejectUpgrade, and is checked at registration', async (t) => {
  const app = await timeoutApp({ handshakeTimeout: 50 }, () => new Promise(() => {}), true)
  t.teardown(() => closeApp(app))
  await t.rejects(app.injectWS('/ws'), /Unexpected server response: 503/)
  const response = await app.inject('/ws')
  t.equal(response.statusCode, 503)
  t.same(response.json(), { detail: 'Handshake timed out' })

  const bad = Fastify()
  await bad.register(websocket)
  t.teardown(() => bad.close())
  await t.rejects(async () => { await bad.register(chanx, { handshakeTimeout: 1.5 }) }, { code: 'FST_CHANX_INVALID_OPTION', message: /handshakeTimeout/ })
})
