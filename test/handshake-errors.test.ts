import { test } from 'tap'
import {
  AuthenticationFailed,
  IsAuthenticated,
  NotAuthenticated,
  PermissionDenied,
  jwtAuthentication,
  sessionAuthentication,
  type Authenticator
} from '../plugin'
import { INTERNAL_500, NOT_PROVIDED_401, NOT_PROVIDED_403, OK_MESSAGE, buildApp, captureLogs, injectRefused, injectSocket, refusal, refusedRoute } from './helpers/handshake'

const SECRET_TEXT = 'connect ECONNREFUSED users-db.internal:5432'

const broken: Authenticator = {
  authenticate () { throw new Error(SECRET_TEXT) }
}

test('an authenticator that throws unexpectedly refuses with 4500 "Internal server error", nothing internal sent', async (t) => {
  const { lines, logger } = captureLogs()
  const socket = await refusedRoute(t, { authentication: [broken] }, { server: { logger, genReqId: () => 'req-broken-1' } })
  t.same(socket.messages, [INTERNAL_500])
  t.equal(socket.code, 4500)
  t.notMatch(socket.messages.join('') + socket.reason, /ECONNREFUSED|users-db/)

  const line = lines.find((entry) => JSON.stringify(entry).includes(SECRET_TEXT))
  t.ok(line, 'the error is logged')
  t.equal(line?.reqId, 'req-broken-1', 'with the request id')
  t.equal((line?.err as { message?: string } | undefined)?.message, SECRET_TEXT)
  t.equal(line?.level, 50, 'at error level')
})

test('an async authenticator that rejects is a 500 too', async (t) => {
  const { lines, logger } = captureLogs()
  const socket = await refusedRoute(t, { authentication: [{ authenticate: async () => { throw new TypeError('user.id is undefined') } }] }, { server: { logger } })
  t.same(socket.messages, [INTERNAL_500])
  t.equal(socket.code, 4500)
  const line = lines.find((entry) => JSON.stringify(entry).includes('user.id is undefined'))
  t.type(line?.reqId, 'string')
})

test('an error carrying an HTTP status is still a 500: only refusals choose the status', async (t) => {
  const app = await buildApp(t)
  const withStatus = Object.assign(new Error('upstream said 401'), { statusCode: 401 })
  app.get('/ws', { websocket: true, authentication: [{ authenticate () { throw withStatus } }] }, () => t.fail('handler ran'))
  await app.ready()
  const socket = await injectRefused(app, '/ws')
  t.same(socket.messages, [INTERNAL_500])
  t.equal(socket.code, 4500)
})

test('a permission that throws unexpectedly refuses with 4500', async (t) => {
  const socket = await refusedRoute(t, { permissions: [{ hasPermission () { throw new Error('permission store down') } }] })
  t.same(socket.messages, [INTERNAL_500])
  t.equal(socket.code, 4500)
})

test('an authenticator that throws unexpectedly on an HTTP route answers 500 {"detail":"Internal server error"}', async (t) => {
  const { lines, logger } = captureLogs()
  const app = await buildApp(t, { server: { logger, genReqId: () => 'req-http-1' } })
  app.get('/api', { authentication: [broken] }, async () => 'never')
  await app.ready()
  const response = await app.inject('/api')
  t.equal(response.statusCode, 500)
  t.equal(response.body, '{"detail":"Internal server error"}')
  t.equal(lines.find((entry) => JSON.stringify(entry).includes(SECRET_TEXT))?.reqId, 'req-http-1')
})

test('AuthenticationFailed with a challenge is 401, without one 403, with its detail', async (t) => {
  const app = await buildApp(t)
  const rejecting = (challenge?: string): Authenticator => ({
    ...(challenge === undefined ? {} : { challenge }),
    authenticate () { throw new AuthenticationFailed('Key revoked.') }
  })
  app.get('/ws/challenge', { websocket: true, authentication: [rejecting('ApiKey')] }, () => t.fail('handler ran'))
  app.get('/ws/plain', { websocket: true, authentication: [rejecting()] }, () => t.fail('handler ran'))
  await app.ready()
  const challenged = await injectRefused(app, '/ws/challenge')
  t.same(challenged.messages, [refusal(401, 'Unauthorized', 'Key revoked.')])
  t.equal(challenged.code, 4401)
  const plain = await injectRefused(app, '/ws/plain')
  t.same(plain.messages, [refusal(403, 'Forbidden', 'Key revoked.')])
  t.equal(plain.code, 4403)
})

test('AuthenticationFailed stops the chain: later authenticators are not tried', async (t) => {
  const app = await buildApp(t)
  let tried = false
  app.get('/ws', {
    websocket: true,
    authentication: [{ authenticate () { throw new AuthenticationFailed() } }, { authenticate () { tried = true; return { name: 'x' } } }]
  }, () => t.fail('handler ran'))
  await app.ready()
  const socket = await injectRefused(app, '/ws')
  t.same(socket.messages, [refusal(403, 'Forbidden', 'Incorrect authentication credentials.')])
  t.equal(tried, false)
})

test('the first authenticator that returns a user wins; null means "try the next"', async (t) => {
  const app = await buildApp(t)
  const calls: string[] = []
  app.get('/ws', {
    websocket: true,
    authentication: [
      { authenticate () { calls.push('a'); return null } },
      { authenticate () { calls.push('b'); return undefined } },
      { authenticate () { calls.push('c'); return { name: 'carol' } } },
      { authenticate () { calls.push('d'); return { name: 'dave' } } }
    ]
  }, (socket, request) => socket.send(JSON.stringify(request.user)))
  await app.ready()
  const socket = await injectSocket(app, '/ws')
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, '{"name":"carol"}'])
  t.same(calls, ['a', 'b', 'c'])
})

test('no credentials with a challenge (jwt first) is 401 / 4401', async (t) => {
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, authentication: [jwtAuthentication(), sessionAuthentication()], permissions: [IsAuthenticated] }, () => t.fail('handler ran'))
  app.get('/api', { authentication: [jwtAuthentication(), sessionAuthentication()], permissions: [IsAuthenticated] }, async () => 'never')
  await app.ready()
  const socket = await injectRefused(app, '/ws')
  t.same(socket.messages, [NOT_PROVIDED_401])
  t.equal(socket.code, 4401)
  const http = await app.inject('/api')
  t.equal(http.statusCode, 401)
  t.equal(http.headers['www-authenticate'], 'Bearer realm="api"')
  t.equal(http.body, '{"detail":"Authentication credentials were not provided."}')
})

test('no credentials without a challenge (session first) is 403 / 4403', async (t) => {
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, authentication: [sessionAuthentication(), jwtAuthentication()], permissions: [IsAuthenticated] }, () => t.fail('handler ran'))
  app.get('/api', { authentication: [sessionAuthentication(), jwtAuthentication()], permissions: [IsAuthenticated] }, async () => 'never')
  await app.ready()
  const socket = await injectRefused(app, '/ws')
  t.same(socket.messages, [NOT_PROVIDED_403])
  t.equal(socket.code, 4403)
  const http = await app.inject('/api')
  t.equal(http.statusCode, 403)
  t.equal(http.headers['www-authenticate'], undefined)
  t.equal(http.body, '{"detail":"Authentication credentials were not provided."}')
})

test('refusal errors thrown by an authenticator keep their status and detail', async (t) => {
  const app = await buildApp(t)
  app.get('/ws/denied', { websocket: true, authentication: [{ authenticate () { throw new PermissionDenied('Account locked.') } }] }, () => t.fail('handler ran'))
  app.get('/ws/unauth', { websocket: true, authentication: [{ challenge: 'Token', authenticate () { throw new NotAuthenticated('Log in first.') } }] }, () => t.fail('handler ran'))
  await app.ready()
  const denied = await injectRefused(app, '/ws/denied')
  t.same(denied.messages, [refusal(403, 'Forbidden', 'Account locked.')])
  const unauth = await injectRefused(app, '/ws/unauth')
  t.same(unauth.messages, [refusal(401, 'Unauthorized', 'Log in first.')])
  t.equal(unauth.code, 4401)
})

test('refused sockets close with the status text as the close reason', async (t) => {
  const socket = await refusedRoute(t, { authentication: [sessionAuthentication()], permissions: [IsAuthenticated] })
  t.equal(socket.code, 4403)
  t.equal(socket.reason, 'Forbidden')
})
