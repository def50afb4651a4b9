import { test } from 'tap'
import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { IsAuthenticated, jwtAuthentication, type Permission } from '../plugin'
import { OK_MESSAGE, buildApp, headerUser, injectSocket, listen, realSocket } from './helpers/handshake'

/** Allows after a timer: the handshake is still pending when the upgrade request has been read. */
const SlowAllow: Permission<unknown> = {
  hasPermission: async () => { await new Promise((resolve) => setTimeout(resolve, 20)); return true }
}

/** A handler that sends three frames at once, synchronously, the moment it is called. */
function eagerHandler (socket: WebSocket): void {
  socket.send('first')
  socket.send('second')
  socket.send('third')
}

test('the authentication message arrives before anything the handler sends synchronously (injectWS)', async (t) => {
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, authentication: [headerUser], permissions: [IsAuthenticated, SlowAllow] }, eagerHandler)
  await app.ready()
  const socket = await injectSocket(app, '/ws', { headers: { 'x-user': 'alice' } })
  await socket.waitForMessages(4)
  t.same(socket.messages, [OK_MESSAGE, 'first', 'second', 'third'])
})

test('the authentication message arrives before anything the handler sends synchronously (real client)', async (t) => {
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated, SlowAllow] }, eagerHandler)
  await listen(app)
  const sockets = Array.from({ length: 5 }, (_, i) => realSocket(t, app, `/ws?token=${app.jwt.sign({ sub: `user-${i}` })}`))
  await Promise.all(sockets.map((socket) => socket.opened))
  await Promise.all(sockets.map((socket) => socket.waitForMessages(4)))
  for (const socket of sockets) t.same(socket.messages, [OK_MESSAGE, 'first', 'second', 'third'])
})

test('the authentication message also precedes what the handler sends from the connection\'s first tick', async (t) => {
  const app = await buildApp(t)
  app.get('/ws', { websocket: true }, (socket) => {
    queueMicrotask(() => socket.send('microtask'))
    process.nextTick(() => socket.send('nextTick'))
    socket.send('sync')
  })
  await app.ready()
  const socket = await injectSocket(app, '/ws')
  await socket.waitForMessages(4)
  t.equal(socket.messages[0], OK_MESSAGE)
  t.same(socket.messages.slice(1).sort(), ['microtask', 'nextTick', 'sync'])
  t.equal(socket.messages[1], 'sync')
})

test('a plain @fastify/websocket (socket, request) handler works unchanged on an accepted route', async (t) => {
  const app = await buildApp(t)
  const seen: Array<{ user: unknown, url: string, params: unknown }> = []
  app.get('/ws/echo/:room', { websocket: true, authentication: [headerUser], permissions: [IsAuthenticated] }, (socket: WebSocket, request: FastifyRequest) => {
    seen.push({ user: request.user, url: request.url, params: request.params })
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      socket.send(isBinary ? data : `echo ${data.toString()}`, { binary: isBinary })
    })
  })
  await listen(app)
  const socket = realSocket(t, app, '/ws/echo/lobby', {
    headers: { 'x-user': 'alice' },
    // Sent at once, before the authentication message was even read: the handler's listener gets them.
    onOpen: (ws) => { ws.send('one'); ws.send('two') }
  })
  await socket.opened
  await socket.waitForMessages(3)
  t.same(socket.messages, [OK_MESSAGE, 'echo one', 'echo two'])
  socket.socket.send('three')
  await socket.waitForMessages(4)
  t.equal(socket.messages[3], 'echo three')
  t.same(seen, [{ user: { name: 'alice' }, url: '/ws/echo/lobby', params: { room: 'lobby' } }])
  socket.socket.close(1000, 'bye')
  t.equal(await socket.closed(), 1000, 'a normal close from the client is not altered')
})

test('a plain handler that closes the socket itself keeps its own code', async (t) => {
  const app = await buildApp(t)
  app.get('/ws', { websocket: true }, (socket) => {
    socket.send('bye')
    socket.close(4001, 'handler says so')
  })
  await app.ready()
  const socket = await injectSocket(app, '/ws')
  t.equal(await socket.closed(), 4001)
  t.equal(socket.reason, 'handler says so')
  t.same(socket.messages, [OK_MESSAGE, 'bye'])
})
