import { test } from 'tap'
import Fastify, { type FastifyRequest } from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { IsAuthenticated, defineSocketRoute, jwtAuthentication, type Permission } from '../plugin'
import { closeApp, connect } from '../plugin/testing'
import { pipelined } from './helpers/pipelined'
import { socketApp } from './helpers/router-client'

interface Doc { id: string, owner: string }
const docs = new Map<string, Doc>([['d1', { id: 'd1', owner: 'alice' }], ['d2', { id: 'd2', owner: 'bob' }]])
const IsOwner: Permission = {
  message: 'This document is not yours.',
  hasObjectPermission: (request, doc) => (doc as Doc).owner === (request.user as { sub: string }).sub
}

async function buildApp () {
  const app = Fastify()
  await app.register(jwt, { secret: 'an-objects-secret-of-32-characters!!' })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated] })
  // Answers 403: the document exists, and the caller may know it does.
  app.get('/ws/docs/:id', {
    websocket: true,
    permissions: [IsAuthenticated, IsOwner],
    objectLoader: (request: FastifyRequest<{ Params: { id: string } }>) => docs.get(request.params.id) ?? null
  }, (socket) => socket.send('in'))
  // Answers 404: the loader only finds the caller's own documents, so others' stay secret.
  app.get('/ws/private/:id', {
    websocket: true,
    objectLoader: (request: FastifyRequest<{ Params: { id: string } }>) => {
      const doc = docs.get(request.params.id)
      return doc !== undefined && doc.owner === (request.user as { sub: string }).sub ? doc : null
    }
  }, (socket) => socket.send('in'))
  await app.ready()
  return app
}

test("another user's object is refused with 403 when the permission checks it", async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws/docs/d2', { query: { token: app.jwt.sign({ sub: 'alice' }) } })
  t.same(await client.authentication(), { status_code: 403, status_text: 'Forbidden', data: { detail: 'This document is not yours.' } })
  t.equal(await client.closed(), 4403)
  const own = await connect(app, '/ws/docs/d1', { query: { token: app.jwt.sign({ sub: 'alice' }) } })
  t.equal((await own.authentication()).status_code, 200)
})

test("another user's object is 404, like a missing one, when the loader hides it", async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const hidden = await connect(app, '/ws/private/d2', { query: { token: app.jwt.sign({ sub: 'alice' }) } })
  const missing = await connect(app, '/ws/private/nope', { query: { token: app.jwt.sign({ sub: 'alice' }) } })
  const expected = { status_code: 404, status_text: 'Not Found', data: { detail: 'Not found.' } }
  t.same(await hidden.authentication(), expected)
  t.same(await missing.authentication(), expected, 'indistinguishable from a missing object')
  t.equal(await hidden.closed(), 4404)
})

test('frames sent before the handshake completes never reach the app of a refused socket', async (t) => {
  let handled = 0
  const app = await socketApp(t, { chanx: { permissions: [IsAuthenticated] } })
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { say: Type.String() },
    handlers: { say: () => { handled++ } }
  }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const response = await pipelined(app, '/ws', [
    '{"action":"say","payload":"early"}', '{"action":"say","payload":"early 2"}'
  ])
  t.match(response, /101 Switching Protocols/)
  t.match(response, /You do not have permission to perform this action/, 'the refusal went out')
  t.equal(handled, 0, 'no handler saw a frame')
})

test('frames pipelined behind an accepted handshake are handled after it, in order', async (t) => {
  const seen: string[] = []
  const app = await socketApp(t)
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { say: Type.String() },
    handlers: { say: (message) => { seen.push(message.payload) } }
  }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  await pipelined(app, '/ws', ['{"action":"say","payload":"1"}', '{"action":"say","payload":"2"}'])
  t.same(seen, ['1', '2'])
})
