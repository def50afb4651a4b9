import { test } from 'tap'
import { DenyAll, IsAuthenticated, jwtAuthentication, sessionAuthentication } from '../plugin'
import { NOT_PROVIDED_403, OK_MESSAGE, buildApp, injectRefused, injectSocket, listen, realSocket, refusedRoute, rejectedUpgrade } from './helpers/handshake'

test('sendAuthenticationMessage: false on the plugin sends no message on success', async (t) => {
  const app = await buildApp(t, { chanx: { sendAuthenticationMessage: false } })
  app.get('/ws', { websocket: true }, (socket) => socket.send('first'))
  await app.ready()
  const socket = await injectSocket(app, '/ws')
  await socket.waitForMessages(1)
  t.same(socket.messages, ['first'])
})

test('sendAuthenticationMessage: false on the plugin sends no message on refusal, the close code still goes', async (t) => {
  const app = await buildApp(t, { chanx: { sendAuthenticationMessage: false, authentication: [sessionAuthentication()], permissions: [IsAuthenticated] } })
  app.get('/ws', { websocket: true }, () => t.fail('handler ran'))
  await app.ready()
  const socket = await injectRefused(app, '/ws')
  t.same(socket.messages, [])
  t.equal(socket.code, 4403)
})

test('sendAuthenticationMessage: false on a route overrides the plugin default', async (t) => {
  const app = await buildApp(t)
  app.get('/ws/quiet', { websocket: true, sendAuthenticationMessage: false }, (socket) => socket.send('first'))
  app.get('/ws/quiet-refused', { websocket: true, sendAuthenticationMessage: false, permissions: [DenyAll] }, () => t.fail('handler ran'))
  app.get('/ws/loud', { websocket: true }, (socket) => socket.send('first'))
  await app.ready()
  const quiet = await injectSocket(app, '/ws/quiet')
  await quiet.waitForMessages(1)
  t.same(quiet.messages, ['first'])
  const refused = await injectRefused(app, '/ws/quiet-refused')
  t.same(refused.messages, [])
  t.equal(refused.code, 4403)
  const loud = await injectSocket(app, '/ws/loud')
  await loud.waitForMessages(2)
  t.same(loud.messages, [OK_MESSAGE, 'first'])
})

test('sendAuthenticationMessage: true on a route overrides a plugin-wide false', async (t) => {
  const socket = await refusedRoute(t, { sendAuthenticationMessage: true, authentication: [sessionAuthentication()], permissions: [IsAuthenticated] }, { chanx: { sendAuthenticationMessage: false } })
  t.same(socket.messages, [NOT_PROVIDED_403])
  t.equal(socket.code, 4403)
})

test('rejectUpgrade: true on the plugin answers the upgrade with the HTTP status (injectWS)', async (t) => {
  const app = await buildApp(t, { chanx: { rejectUpgrade: true } })
  app.get('/ws', { websocket: true, authentication: [sessionAuthentication()], permissions: [IsAuthenticated] }, () => t.fail('handler ran'))
  await app.ready()
  await t.rejects(app.injectWS('/ws'), { message: 'Unexpected server response: 403' })
  t.equal(app.websocketServer.clients.size, 0, 'no socket was opened')
})

test('rejectUpgrade: true answers a real client with the status and {detail}', async (t) => {
  const app = await buildApp(t, { chanx: { rejectUpgrade: true } })
  app.get('/ws/session', { websocket: true, authentication: [sessionAuthentication()], permissions: [IsAuthenticated] }, () => t.fail('handler ran'))
  app.get('/ws/jwt', { websocket: true, authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated] }, () => t.fail('handler ran'))
  app.get('/ws/open', { websocket: true }, (socket) => socket.send('in'))
  await listen(app)

  const forbidden = await rejectedUpgrade(t, app, '/ws/session')
  t.equal(forbidden.statusCode, 403)
  t.equal(forbidden.body, '{"detail":"Authentication credentials were not provided."}')

  const unauthorized = await rejectedUpgrade(t, app, '/ws/jwt?token=garbage')
  t.equal(unauthorized.statusCode, 401)
  t.equal(unauthorized.headers['www-authenticate'], 'Bearer realm="api"')
  t.equal(unauthorized.body, '{"detail":"Invalid token"}')

  const open = realSocket(t, app, '/ws/open')
  await open.opened
  await open.waitForMessages(2)
  t.same(open.messages, [OK_MESSAGE, 'in'], 'an accepted socket still gets the message')
})

test('a real client refused by rejectUpgrade sees an unexpected-response with the statusCode', async (t) => {
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, rejectUpgrade: true, permissions: [DenyAll] }, () => t.fail('handler ran'))
  await listen(app)
  const socket = realSocket(t, app, '/ws')
  const err = await socket.opened.then(() => null, (error: unknown) => error)
  t.match(err, { statusCode: 403 })
})

test('rejectUpgrade: true on a route overrides the plugin default; false on a route overrides true', async (t) => {
  const app = await buildApp(t, { chanx: { permissions: [DenyAll] } })
  app.get('/ws/reject', { websocket: true, rejectUpgrade: true }, () => t.fail('handler ran'))
  app.get('/ws/close', { websocket: true }, () => t.fail('handler ran'))
  await app.ready()
  await t.rejects(app.injectWS('/ws/reject'), { message: 'Unexpected server response: 403' })
  const closed = await injectRefused(app, '/ws/close')
  t.equal(closed.code, 4403)

  const other = await buildApp(t, { chanx: { permissions: [DenyAll], rejectUpgrade: true } })
  other.get('/ws/close', { websocket: true, rejectUpgrade: false }, () => t.fail('handler ran'))
  await other.ready()
  const reopened = await injectRefused(other, '/ws/close')
  t.same(reopened.messages, ['{"action":"authentication","payload":{"status_code":403,"status_text":"Forbidden","data":{"detail":"You do not have permission to perform this action."}}}'])
  t.equal(reopened.code, 4403)
})

test('rejectUpgrade with an objectLoader answers 404 and 500 on the upgrade', async (t) => {
  const app = await buildApp(t, { chanx: { rejectUpgrade: true } })
  app.get('/ws/missing', { websocket: true, objectLoader: () => null }, () => t.fail('handler ran'))
  app.get('/ws/broken', { websocket: true, objectLoader: () => { throw new Error('db down') } }, () => t.fail('handler ran'))
  await listen(app)
  const missing = await rejectedUpgrade(t, app, '/ws/missing')
  t.equal(missing.statusCode, 404)
  t.equal(missing.body, '{"detail":"Not found."}')
  const broken = await rejectedUpgrade(t, app, '/ws/broken')
  t.equal(broken.statusCode, 500)
  t.equal(broken.body, '{"detail":"Internal server error"}')
})
