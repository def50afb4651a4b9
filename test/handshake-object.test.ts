import { test } from 'tap'
import type { FastifyRequest } from 'fastify'
import { IsAuthenticated, NotFound, PermissionDenied, type Permission } from '../plugin'
import { INTERNAL_500, NOT_FOUND_404, NOT_PROVIDED_403, OK_MESSAGE, PERMISSION_DENIED_403, buildApp, captureLogs, headerUser, injectRefused, injectSocket, refusal, refusedRoute } from './helpers/handshake'

interface Room { id: string, members: string[] }

const rooms = new Map<string, Room>([['lobby', { id: 'lobby', members: ['alice', 'bob'] }]])

const IsMember: Permission<Room> = {
  hasObjectPermission: (request, room) => room.members.includes((request.user as { name: string }).name)
}

function loadRoom (request: FastifyRequest): Room | null {
  return rooms.get((request.params as { roomId: string }).roomId) ?? null
}

test('objectLoader\'s object is request.obj, beside request.user, in the socket handler', async (t) => {
  const app = await buildApp(t)
  app.get('/ws/rooms/:roomId', { websocket: true, authentication: [headerUser], permissions: [IsAuthenticated, IsMember], objectLoader: loadRoom }, (socket, request) => {
    socket.send(JSON.stringify({ user: request.user, obj: request.obj }))
  })
  await app.ready()
  const socket = await injectSocket(app, '/ws/rooms/lobby', { headers: { 'x-user': 'alice' } })
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, '{"user":{"name":"alice"},"obj":{"id":"lobby","members":["alice","bob"]}}'])
})

test('objectLoader may be async and receives the route params', async (t) => {
  const app = await buildApp(t)
  const seen: unknown[] = []
  app.get('/ws/rooms/:roomId', {
    websocket: true,
    objectLoader: async (request: FastifyRequest) => { seen.push(request.params); await new Promise((resolve) => setTimeout(resolve, 5)); return loadRoom(request) }
  }, (socket, request) => socket.send((request.obj as Room).id))
  await app.ready()
  const socket = await injectSocket(app, '/ws/rooms/lobby')
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, 'lobby'])
  t.same(seen, [{ roomId: 'lobby' }])
})

test('objectLoader returning null refuses with 404 "Not found." and 4404', async (t) => {
  const socket = await refusedRoute(t, { objectLoader: loadRoom }, { url: '/ws/rooms/:roomId', path: '/ws/rooms/nowhere' })
  t.same(socket.messages, [NOT_FOUND_404])
  t.equal(socket.code, 4404)
})

test('objectLoader returning undefined refuses with 4404 too', async (t) => {
  const socket = await refusedRoute(t, { objectLoader: () => undefined }, { url: '/ws/rooms/:roomId', path: '/ws/rooms/x' })
  t.same(socket.messages, [NOT_FOUND_404])
  t.equal(socket.code, 4404)
})

test('objectLoader that throws refuses with 500 and 4500, nothing internal sent', async (t) => {
  const { lines, logger } = captureLogs()
  const socket = await refusedRoute(t, { objectLoader: async () => { throw new Error('database password is hunter2') } }, { url: '/ws/rooms/:roomId', path: '/ws/rooms/lobby', server: { logger } })
  t.same(socket.messages, [INTERNAL_500])
  t.equal(socket.code, 4500)
  t.notMatch(socket.messages.join(''), /hunter2/)
  t.ok(lines.some((line) => JSON.stringify(line).includes('hunter2')), 'the error is logged server-side')
})

test('objectLoader that throws NotFound or PermissionDenied refuses with its detail', async (t) => {
  const app = await buildApp(t)
  app.get('/ws/a', { websocket: true, objectLoader: () => { throw new NotFound('No such room.') } }, () => t.fail('handler ran'))
  app.get('/ws/b', { websocket: true, objectLoader: () => { throw new PermissionDenied('Room is closed.') } }, () => t.fail('handler ran'))
  await app.ready()
  const a = await injectRefused(app, '/ws/a')
  t.same(a.messages, [refusal(404, 'Not Found', 'No such room.')])
  t.equal(a.code, 4404)
  const b = await injectRefused(app, '/ws/b')
  t.same(b.messages, [refusal(403, 'Forbidden', 'Room is closed.')])
  t.equal(b.code, 4403)
})

test('hasObjectPermission denying refuses with 403 and 4403', async (t) => {
  const socket = await refusedRoute(t, { authentication: [headerUser], permissions: [IsAuthenticated, IsMember], objectLoader: loadRoom }, { url: '/ws/rooms/:roomId', path: '/ws/rooms/lobby', headers: { 'x-user': 'mallory' } })
  t.same(socket.messages, [PERMISSION_DENIED_403])
  t.equal(socket.code, 4403)
})

test('hasObjectPermission with a message refuses with that detail', async (t) => {
  const app = await buildApp(t)
  const NotMember: Permission<Room> = { ...IsMember, message: 'You are not a member of this room.' }
  app.get('/ws/rooms/:roomId', { websocket: true, authentication: [headerUser], permissions: [NotMember], objectLoader: loadRoom }, () => t.fail('handler ran'))
  await app.ready()
  const socket = await injectRefused(app, '/ws/rooms/lobby', { headers: { 'x-user': 'mallory' } })
  t.same(socket.messages, [refusal(403, 'Forbidden', 'You are not a member of this room.')])
})

test('permissions run before the object is loaded, object permissions after', async (t) => {
  const calls: string[] = []
  const app = await buildApp(t)
  app.get('/ws', {
    websocket: true,
    authentication: [headerUser],
    permissions: [{ hasPermission: () => { calls.push('hasPermission'); return true }, hasObjectPermission: () => { calls.push('hasObjectPermission'); return true } }, IsAuthenticated],
    objectLoader: () => { calls.push('objectLoader'); return { id: 1 } }
  }, (socket) => socket.send('in'))
  await app.ready()
  const refused = await injectRefused(app, '/ws')
  t.same(refused.messages, [NOT_PROVIDED_403])
  t.same(calls, ['hasPermission'], 'an anonymous request never reaches the loader')
  calls.length = 0
  const socket = await injectSocket(app, '/ws', { headers: { 'x-user': 'alice' } })
  await socket.waitForMessages(2)
  t.same(calls, ['hasPermission', 'objectLoader', 'hasObjectPermission'])
})

test('objectLoader on an HTTP route: request.obj in the handler, 404 and 500 as {detail}', async (t) => {
  const app = await buildApp(t)
  app.get('/api/rooms/:roomId', { authentication: [headerUser], permissions: [IsAuthenticated, IsMember], objectLoader: loadRoom }, async (request) => ({ room: request.obj, user: request.user }))
  app.get('/api/broken', { objectLoader: () => { throw new Error('boom') } }, async () => 'never')
  await app.ready()
  const ok = await app.inject({ url: '/api/rooms/lobby', headers: { 'x-user': 'bob' } })
  t.equal(ok.statusCode, 200)
  t.equal(ok.body, '{"room":{"id":"lobby","members":["alice","bob"]},"user":{"name":"bob"}}')
  const missing = await app.inject({ url: '/api/rooms/nowhere', headers: { 'x-user': 'bob' } })
  t.equal(missing.statusCode, 404)
  t.equal(missing.body, '{"detail":"Not found."}')
  const forbidden = await app.inject({ url: '/api/rooms/lobby', headers: { 'x-user': 'mallory' } })
  t.equal(forbidden.statusCode, 403)
  t.equal(forbidden.body, '{"detail":"You do not have permission to perform this action."}')
  const broken = await app.inject('/api/broken')
  t.equal(broken.statusCode, 500)
  t.equal(broken.body, '{"detail":"Internal server error"}')
})
