import { test } from 'tap'
import type { FastifyRequest } from 'fastify'
import { AllowAny, DenyAll, IsAuthenticated, and, not, or, type Permission } from '../plugin'
import { NOT_PROVIDED_403, OK_MESSAGE, PERMISSION_DENIED_403, buildApp, headerUser, injectRefused, injectSocket, refusal, refusedRoute } from './helpers/handshake'

function requestFor (user: unknown): FastifyRequest {
  return { user } as unknown as FastifyRequest
}

const allowRequestDenyObject: Permission<unknown> = { hasPermission: () => true, hasObjectPermission: () => false }
const denyRequestAllowObject: Permission<unknown> = { hasPermission: () => false, hasObjectPermission: () => true }

test('built-in permissions answer as DRF\'s', async (t) => {
  t.equal(await AllowAny.hasPermission!(requestFor(null)), true)
  t.equal(await DenyAll.hasPermission!(requestFor({ name: 'alice' })), false)
  t.equal(await IsAuthenticated.hasPermission!(requestFor(null)), false)
  t.equal(await IsAuthenticated.hasPermission!(requestFor({ name: 'alice' })), true)
  t.ok(Object.isFrozen(AllowAny) && Object.isFrozen(IsAuthenticated) && Object.isFrozen(DenyAll), 'built-ins cannot be altered')
})

test('and() allows only when every operand allows', async (t) => {
  const anonymous = requestFor(null)
  const alice = requestFor({ name: 'alice' })
  t.equal(await and(AllowAny, IsAuthenticated).hasPermission!(alice), true)
  t.equal(await and(AllowAny, IsAuthenticated).hasPermission!(anonymous), false)
  t.equal(await and(AllowAny, DenyAll).hasPermission!(alice), false)
  t.equal(await and(allowRequestDenyObject, AllowAny).hasObjectPermission!(alice, {}), false)
  t.equal(await and(AllowAny, { hasObjectPermission: () => true }).hasObjectPermission!(alice, {}), true)
})

test('or() allows when one operand allows, pairing each operand\'s request and object checks', async (t) => {
  const anonymous = requestFor(null)
  t.equal(await or(DenyAll, AllowAny).hasPermission!(anonymous), true)
  t.equal(await or(DenyAll, IsAuthenticated).hasPermission!(anonymous), false)
  const mixed = or(allowRequestDenyObject, denyRequestAllowObject)
  t.equal(await mixed.hasPermission!(anonymous), true, 'the first operand allows the request')
  t.equal(await mixed.hasObjectPermission!(anonymous, {}), false, 'no operand allows both request and object')
  t.equal(await or(DenyAll, { hasObjectPermission: () => true }).hasObjectPermission!(anonymous, {}), true)
})

test('not() inverts, and adds no object check to an operand without one', async (t) => {
  t.equal(await not(IsAuthenticated).hasPermission!(requestFor(null)), true)
  t.equal(await not(IsAuthenticated).hasPermission!(requestFor({ name: 'alice' })), false)
  t.equal(not(IsAuthenticated).hasObjectPermission, undefined)
  t.equal(await not(allowRequestDenyObject).hasObjectPermission!(requestFor(null), {}), true)
  t.equal(await not(not(DenyAll)).hasPermission!(requestFor(null)), false)
})

test('composition accepts async operands', async (t) => {
  const later = (value: boolean): Permission<unknown> => ({
    hasPermission: async () => { await new Promise((resolve) => setImmediate(resolve)); return value },
    hasObjectPermission: async () => value
  })
  const request = requestFor(null)
  t.equal(await and(later(true), later(true)).hasPermission!(request), true)
  t.equal(await and(later(true), later(false)).hasPermission!(request), false)
  t.equal(await or(later(false), later(true)).hasObjectPermission!(request, {}), true)
  t.equal(await not(later(true)).hasObjectPermission!(request, {}), false)
})

test('composition refuses what is not a permission', async (t) => {
  t.throws(() => and(), { code: 'FST_CHANX_INVALID_OPTION', message: /and\(\) needs at least one permission/ })
  t.throws(() => or(), { code: 'FST_CHANX_INVALID_OPTION', message: /or\(\) needs at least one permission/ })
  t.throws(() => not(null as unknown as Permission), { code: 'FST_CHANX_INVALID_OPTION', message: /not\(\) operand/ })
  t.throws(() => and({ hasPermission: 'yes' } as unknown as Permission), { code: 'FST_CHANX_INVALID_OPTION' })
})

test('AllowAny lets an anonymous socket in', async (t) => {
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, authentication: [headerUser], permissions: [AllowAny] }, (socket, request) => {
    socket.send(`user ${JSON.stringify(request.user)}`)
  })
  await app.ready()
  const socket = await injectSocket(app, '/ws')
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, 'user null'])
})

test('IsAuthenticated refuses an anonymous socket with 4403 and admits a user', async (t) => {
  const app = await buildApp(t)
  let calls = 0
  app.get('/ws', { websocket: true, authentication: [headerUser], permissions: [IsAuthenticated] }, (socket) => { calls++; socket.send('in') })
  await app.ready()
  const anonymous = await injectRefused(app, '/ws')
  t.same(anonymous.messages, [NOT_PROVIDED_403])
  t.equal(anonymous.code, 4403)
  t.equal(calls, 0)
  const alice = await injectSocket(app, '/ws', { headers: { 'x-user': 'alice' } })
  await alice.waitForMessages(2)
  t.same(alice.messages, [OK_MESSAGE, 'in'])
})

test('DenyAll refuses an authenticated socket with 4403 "You do not have permission"', async (t) => {
  const socket = await refusedRoute(t, { authentication: [headerUser], permissions: [DenyAll] }, { headers: { 'x-user': 'alice' } })
  t.same(socket.messages, [PERMISSION_DENIED_403])
  t.equal(socket.code, 4403)
})

test('DenyAll on a route without authenticators refuses with the permission detail', async (t) => {
  const socket = await refusedRoute(t, { permissions: [DenyAll] })
  t.same(socket.messages, [PERMISSION_DENIED_403])
  t.equal(socket.code, 4403)
})

test('a custom permission\'s message is the detail of its 403', async (t) => {
  const IsAdmin: Permission<unknown> = {
    message: 'Admins only.',
    hasPermission: (request) => (request.user as { name?: string } | null)?.name === 'admin'
  }
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, authentication: [headerUser], permissions: [IsAuthenticated, IsAdmin] }, (socket) => socket.send('in'))
  app.get('/api', { authentication: [headerUser], permissions: [IsAuthenticated, IsAdmin] }, async () => ({ in: true }))
  await app.ready()
  const alice = await injectRefused(app, '/ws', { headers: { 'x-user': 'alice' } })
  t.same(alice.messages, [refusal(403, 'Forbidden', 'Admins only.')])
  t.equal(alice.code, 4403)
  const anonymous = await injectRefused(app, '/ws')
  t.same(anonymous.messages, [NOT_PROVIDED_403], 'an anonymous request is "not authenticated", as DRF')
  const admin = await injectSocket(app, '/ws', { headers: { 'x-user': 'admin' } })
  await admin.waitForMessages(2)
  t.same(admin.messages, [OK_MESSAGE, 'in'])
  const http = await app.inject({ url: '/api', headers: { 'x-user': 'alice' } })
  t.equal(http.statusCode, 403)
  t.equal(http.body, '{"detail":"Admins only."}')
})

test('composed permissions decide the handshake', async (t) => {
  const IsStaff: Permission<unknown> = { hasPermission: (request) => (request.user as { name?: string } | null)?.name === 'staff' }
  const IsBanned: Permission<unknown> = { hasPermission: (request) => (request.user as { name?: string } | null)?.name === 'banned' }
  const app = await buildApp(t)
  app.get('/ws/or', { websocket: true, authentication: [headerUser], permissions: [or(IsStaff, not(IsAuthenticated))] }, (socket) => socket.send('in'))
  app.get('/ws/and', { websocket: true, authentication: [headerUser], permissions: [and(IsAuthenticated, not(IsBanned))] }, (socket) => socket.send('in'))
  await app.ready()

  const staff = await injectSocket(app, '/ws/or', { headers: { 'x-user': 'staff' } })
  await staff.waitForMessages(2)
  t.same(staff.messages, [OK_MESSAGE, 'in'])
  const anonymous = await injectSocket(app, '/ws/or')
  await anonymous.waitForMessages(2)
  t.same(anonymous.messages, [OK_MESSAGE, 'in'], 'not(IsAuthenticated) lets the anonymous in')
  const alice = await injectRefused(app, '/ws/or', { headers: { 'x-user': 'alice' } })
  t.same(alice.messages, [PERMISSION_DENIED_403])
  t.equal(alice.code, 4403)

  const ok = await injectSocket(app, '/ws/and', { headers: { 'x-user': 'alice' } })
  await ok.waitForMessages(2)
  t.same(ok.messages, [OK_MESSAGE, 'in'])
  const banned = await injectRefused(app, '/ws/and', { headers: { 'x-user': 'banned' } })
  t.same(banned.messages, [PERMISSION_DENIED_403])
  t.equal(banned.code, 4403)
})

test('async permissions are awaited', async (t) => {
  const SlowDeny: Permission<unknown> = {
    message: 'Slowly denied.',
    hasPermission: async () => { await new Promise((resolve) => setTimeout(resolve, 10)); return false }
  }
  const SlowAllow: Permission<unknown> = { hasPermission: async () => { await new Promise((resolve) => setTimeout(resolve, 10)); return true } }
  const app = await buildApp(t)
  app.get('/ws/deny', { websocket: true, permissions: [SlowAllow, SlowDeny] }, () => t.fail('handler ran'))
  app.get('/ws/allow', { websocket: true, permissions: [SlowAllow] }, (socket) => socket.send('in'))
  await app.ready()
  const denied = await injectRefused(app, '/ws/deny')
  t.same(denied.messages, [refusal(403, 'Forbidden', 'Slowly denied.')])
  t.equal(denied.code, 4403)
  const allowed = await injectSocket(app, '/ws/allow')
  await allowed.waitForMessages(2)
  t.same(allowed.messages, [OK_MESSAGE, 'in'])
})

test('permissions run in order and stop at the first refusal', async (t) => {
  const calls: string[] = []
  const first: Permission<unknown> = { hasPermission: () => { calls.push('first'); return false } }
  const second: Permission<unknown> = { hasPermission: () => { calls.push('second'); return true } }
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, permissions: [first, second] }, () => t.fail('handler ran'))
  await app.ready()
  await injectRefused(app, '/ws')
  t.same(calls, ['first'])
})

test('the plugin\'s default permissions apply to routes that set none; a route\'s own replace them', async (t) => {
  const app = await buildApp(t, { chanx: { authentication: [headerUser], permissions: [IsAuthenticated] } })
  app.get('/ws/default', { websocket: true }, (socket, request) => socket.send(`default ${JSON.stringify(request.user)}`))
  app.get('/ws/open', { websocket: true, permissions: [AllowAny] }, (socket, request) => socket.send(`open ${JSON.stringify(request.user)}`))
  app.get('/ws/closed', { websocket: true, permissions: [DenyAll] }, () => t.fail('handler ran'))
  app.get('/ws/no-auth', { websocket: true, authentication: [] }, () => t.fail('handler ran'))
  await app.ready()

  const refused = await injectRefused(app, '/ws/default')
  t.same(refused.messages, [NOT_PROVIDED_403])
  t.equal(refused.code, 4403)
  const alice = await injectSocket(app, '/ws/default', { headers: { 'x-user': 'alice' } })
  await alice.waitForMessages(2)
  t.same(alice.messages, [OK_MESSAGE, 'default {"name":"alice"}'], 'the default authenticators ran')

  const open = await injectSocket(app, '/ws/open')
  await open.waitForMessages(2)
  t.same(open.messages, [OK_MESSAGE, 'open null'])

  const closed = await injectRefused(app, '/ws/closed', { headers: { 'x-user': 'alice' } })
  t.same(closed.messages, [PERMISSION_DENIED_403])

  const noAuth = await injectRefused(app, '/ws/no-auth', { headers: { 'x-user': 'alice' } })
  t.same(noAuth.messages, [PERMISSION_DENIED_403], 'authentication: [] replaces the default: nobody is authenticated')
  t.equal(noAuth.code, 4403)
})

test('without plugin defaults a socket route allows anyone', async (t) => {
  const app = await buildApp(t)
  app.get('/ws', { websocket: true }, (socket, request) => socket.send(`user ${JSON.stringify(request.user)}`))
  await app.ready()
  const socket = await injectSocket(app, '/ws', { headers: { 'x-user': 'alice' } })
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, 'user null'])
})
