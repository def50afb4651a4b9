import { test } from 'tap'
import { DenyAll, IsAuthenticated, jwtAuthentication, sessionAuthentication } from '../plugin'
import {
  NOT_PROVIDED_401,
  NOT_PROVIDED_403,
  OK_MESSAGE,
  PERMISSION_DENIED_403,
  buildApp,
  captureLogs,
  delay,
  listen,
  realSocket
} from './helpers/handshake'
import { pipelined } from './helpers/pipelined'

interface Spies {
  handler: number
  connections: number
  frames: string[]
}

/**
 * An app whose every way of seeing a socket is a spy: the route's handler (which would attach a message
 * listener), and a 'connection' listener of the app on `app.websocketServer`.
 */
async function spiedApp (t: Parameters<typeof buildApp>[0], logger?: ReturnType<typeof captureLogs>['logger']) {
  const spies: Spies = { handler: 0, connections: 0, frames: [] }
  const app = await buildApp(t, logger === undefined ? {} : { server: { logger } })
  app.websocketServer.on('connection', (socket) => {
    spies.connections++
    socket.on('message', (data) => spies.frames.push(`connection listener: ${data.toString()}`))
  })
  const handler = (socket: import('ws').WebSocket): void => {
    spies.handler++
    socket.on('message', (data) => spies.frames.push(`handler: ${data.toString()}`))
  }
  app.get('/ws/session', { websocket: true, authentication: [sessionAuthentication()], permissions: [IsAuthenticated] }, handler)
  app.get('/ws/jwt', { websocket: true, authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated] }, handler)
  app.get('/ws/closed', { websocket: true, permissions: [DenyAll] }, handler)
  app.get('/ws/open', { websocket: true }, handler)
  await listen(app)
  return { app, spies }
}

test('frames sent on open and right after the refusal never reach any code of the app', async (t) => {
  const { lines, logger } = captureLogs()
  const { app, spies } = await spiedApp(t, logger)
  const cases: Array<[string, string, number]> = [
    ['/ws/session', NOT_PROVIDED_403, 4403],
    ['/ws/jwt', NOT_PROVIDED_401, 4401],
    ['/ws/jwt?token=forged', '{"action":"authentication","payload":{"status_code":401,"status_text":"Unauthorized","data":{"detail":"Invalid token"}}}', 4401],
    ['/ws/closed', PERMISSION_DENIED_403, 4403]
  ]
  for (const [path, refusal, code] of cases) {
    const socket = realSocket(t, app, path, {
      onOpen: (ws) => {
        ws.send('{"action":"chat","payload":"sent on open"}')
        ws.send(Buffer.from('binary on open'))
      }
    })
    // Right after the refusal was read, while the server's close frame may still be on its way.
    socket.socket.once('message', () => {
      socket.socket.send('{"action":"chat","payload":"sent after the refusal"}')
      socket.socket.send('after 2')
    })
    await socket.opened
    t.equal(await socket.closed(), code, path)
    t.same(socket.messages, [refusal], path)
  }
  await delay(50)
  t.equal(spies.handler, 0, 'the route\'s handler was never called')
  t.equal(spies.connections, 0, 'the app\'s wss "connection" listener never fired for a refused socket')
  t.same(spies.frames, [], 'no listener of the app saw a frame')
  t.same(lines, [], 'nothing was logged as an error')
})

test('the server holds nothing for a refused socket once it closed', async (t) => {
  const { app, spies } = await spiedApp(t)
  const socket = realSocket(t, app, '/ws/closed')
  await socket.opened
  t.equal(await socket.closed(), 4403)
  await delay(50)
  t.equal(app.websocketServer.clients.size, 0, 'the server dropped the refused socket')
  t.same(spies.frames, [])
  t.equal(spies.handler, 0)
})

test('frames pipelined behind the upgrade request of a refused handshake reach nothing', async (t) => {
  const { app, spies } = await spiedApp(t)
  const response = await pipelined(app, '/ws/session', ['early 1', 'early 2'])
  t.match(response, /^HTTP\/1\.1 101 Switching Protocols/)
  t.ok(response.includes('Authentication credentials were not provided.'), 'the refusal went out')
  t.same(spies.frames, [])
  t.equal(spies.handler, 0)
  t.equal(spies.connections, 0)
})

test('frames pipelined behind an accepted upgrade reach the handler after the authentication message', async (t) => {
  const { app, spies } = await spiedApp(t)
  const response = await pipelined(app, '/ws/open', ['early 1', 'early 2'])
  t.match(response, /^HTTP\/1\.1 101 Switching Protocols/)
  t.ok(response.includes(OK_MESSAGE), 'the OK message went out')
  t.same(spies.frames, ['connection listener: early 1', 'handler: early 1', 'connection listener: early 2', 'handler: early 2'])
  t.equal(spies.handler, 1)
  t.equal(spies.connections, 1)
})
