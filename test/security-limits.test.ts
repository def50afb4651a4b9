import { test } from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx, { jwtAuthentication, type FastifyChanxOptions } from '../plugin'
import { closeApp, connect } from '../plugin/testing'

const SECRET = 'a-limits-secret-of-at-least-32-chars!'
const TOO_MANY = { action: 'authentication', payload: { status_code: 429, status_text: 'Too Many Requests', data: { detail: 'Too many connections' } } }

async function buildApp (options: FastifyChanxOptions, onSocket?: (socket: WebSocket) => void) {
  const app = Fastify()
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })], ...options })
  app.get('/ws', { websocket: true }, (socket) => { onSocket?.(socket) })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return { app, port }
}

function open (url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options)
    ws.once('message', () => resolve(ws))
    ws.once('error', reject)
  })
}

function closeCode (ws: WebSocket, within = 3000): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no close within ${within} ms`)), within)
    ws.once('close', (code) => { clearTimeout(timer); resolve(code) })
  })
}

test('a user over maxConnectionsPerUser is refused with 429 and 4429, and a freed slot is reusable', async (t) => {
  const { app, port } = await buildApp({ maxConnectionsPerUser: 2 })
  t.teardown(() => closeApp(app))
  const token = app.jwt.sign({ sub: 'alice' })
  // A real socket: an injectWS socket never sees its stream end, so its server side never closes.
  const first = await open(`ws://127.0.0.1:${port}/ws?token=${token}`)
  const second = await connect(app, '/ws', { query: { token } })
  await second.authentication()

  const third = await connect(app, '/ws', { query: { token } })
  t.same(await third.receive(), TOO_MANY)
  t.equal(await third.closed(), 4429)

  const bob = await connect(app, '/ws', { query: { token: app.jwt.sign({ sub: 'bob' }) } })
  t.equal((await bob.authentication()).status_code, 200, 'other users are not affected')

  first.close()
  await closeCode(first)
  await new Promise((resolve) => setTimeout(resolve, 50))
  const again = await connect(app, '/ws', { query: { token } })
  t.equal((await again.authentication()).status_code, 200, 'the slot was given back on close')
})

test('an IP over maxConnectionsPerIp is refused with 4429', async (t) => {
  const { app, port } = await buildApp({ maxConnectionsPerIp: 2 })
  t.teardown(() => closeApp(app))
  const url = `ws://127.0.0.1:${port}/ws`
  const sockets = [await open(url), await open(url)]
  t.teardown(() => { for (const ws of sockets) ws.terminate() })
  const third = new WebSocket(url)
  const message = await new Promise<string>((resolve) => third.once('message', (data) => resolve(data.toString())))
  t.same(JSON.parse(message), TOO_MANY)
  t.equal(await closeCode(third), 4429)
})

test('a peer that stops answering pings is terminated by the heartbeat', async (t) => {
  const { app, port } = await buildApp({ heartbeatInterval: 100 })
  t.teardown(() => closeApp(app))
  const silent = await open(`ws://127.0.0.1:${port}/ws`, { autoPong: false })
  const answering = await open(`ws://127.0.0.1:${port}/ws`)
  t.teardown(() => answering.terminate())
  t.equal(await closeCode(silent, 2000), 1006, 'terminated without a close frame')
  t.equal(answering.readyState, WebSocket.OPEN, 'a peer that answers stays')
})

test('a socket that sends nothing for idleTimeout is closed with 4408', async (t) => {
  const { app, port } = await buildApp({ idleTimeout: 200 })
  t.teardown(() => closeApp(app))
  const idle = await open(`ws://127.0.0.1:${port}/ws`)
  const chatty = await open(`ws://127.0.0.1:${port}/ws`)
  const keepTalking = setInterval(() => chatty.send('still here'), 50)
  t.teardown(() => { clearInterval(keepTalking); chatty.terminate() })
  t.equal(await closeCode(idle, 2000), 4408)
  t.equal(chatty.readyState, WebSocket.OPEN)
})

test('a slow reader is closed with 1013 once its buffered output passes maxBufferedBytes', async (t) => {
  let serverSocket: WebSocket | undefined
  const { app, port } = await buildApp({ maxBufferedBytes: 256 * 1024 }, (socket) => { serverSocket = socket })
  t.teardown(() => closeApp(app))
  const reader = await open(`ws://127.0.0.1:${port}/ws`)
  t.teardown(() => reader.terminate())
  // The client stops reading: the kernel buffers fill, then ws buffers what the server sends.
  ;(reader as unknown as { _socket: { pause(): void } })._socket.pause()
  const closed = new Promise<number>((resolve) => serverSocket!.once('close', (code) => resolve(code)))
  const chunk = 'x'.repeat(1024 * 1024)
  for (let i = 0; i < 32 && serverSocket!.readyState === WebSocket.OPEN; i++) serverSocket!.send(chunk)
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal(serverSocket!.readyState === WebSocket.CLOSING || serverSocket!.readyState === WebSocket.CLOSED, true, 'the server is closing the socket')
  reader.terminate()
  t.ok(await closed)
})
