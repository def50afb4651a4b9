import { test } from 'tap'
import type { FastifyRequest } from 'fastify'
import {
  AuthenticationResult,
  ChanxAuthenticator,
  IsAuthenticated,
  type Authenticator
} from '../plugin'
import { INTERNAL_500, NOT_PROVIDED_403, OK_MESSAGE, buildApp, captureLogs, injectRefused, injectSocket, refusal, refusedRoute } from './helpers/handshake'

interface User { name: string, modules: string[] }

const users: Record<string, User> = {
  alice: { name: 'alice', modules: ['chat'] },
  bob: { name: 'bob', modules: [] }
}

const headerUser: Authenticator = {
  authenticate: (request) => users[String(request.headers['x-user'])] ?? null
}

async function isUserActiveInModule (user: unknown): Promise<boolean> {
  return (user as User).modules.includes('chat')
}

const NOT_ACTIVE = refusal(403, 'Forbidden', 'User is not active in this module')

/** The seed's "Custom Authentication" example, line for line. */
class MyAuthenticator extends ChanxAuthenticator {
  override async authenticate (request: FastifyRequest) {
    // First perform the standard authentication
    const authResult = await super.authenticate(request)

    // Add additional validation or processing
    if (authResult.isAuthenticated) {
      // Example: Check if user is active in the current module
      const user = authResult.user
      if (!(await isUserActiveInModule(user))) {
        // Override authentication result
        return new AuthenticationResult({
          isAuthenticated: false,
          statusCode: 403,
          statusText: 'Forbidden',
          data: { detail: 'User is not active in this module' },
          user,
          obj: null
        })
      }
    }
    return authResult
  }
}

test('a route\'s authenticatorClass can refuse a user the standard pipeline accepted', async (t) => {
  const app = await buildApp(t)
  const handled: string[] = []
  app.get('/ws', { websocket: true, authentication: [headerUser], permissions: [IsAuthenticated], authenticatorClass: MyAuthenticator }, (socket, request) => {
    handled.push((request.user as User).name)
    socket.send('in')
  })
  await app.ready()
  const bob = await injectRefused(app, '/ws', { headers: { 'x-user': 'bob' } })
  t.same(bob.messages, [NOT_ACTIVE])
  t.equal(bob.code, 4403)
  const alice = await injectSocket(app, '/ws', { headers: { 'x-user': 'alice' } })
  await alice.waitForMessages(2)
  t.same(alice.messages, [OK_MESSAGE, 'in'])
  t.same(handled, ['alice'])
})

test('super.authenticate\'s refusals pass through the custom class unchanged', async (t) => {
  const anonymous = await refusedRoute(t, { authentication: [headerUser], permissions: [IsAuthenticated], authenticatorClass: MyAuthenticator })
  t.same(anonymous.messages, [NOT_PROVIDED_403])
  t.equal(anonymous.code, 4403)
})

test('the plugin-wide authenticatorClass applies to every route that sets none', async (t) => {
  const app = await buildApp(t, { chanx: { authentication: [headerUser], permissions: [IsAuthenticated], authenticatorClass: MyAuthenticator } })
  app.get('/ws/a', { websocket: true }, (socket) => socket.send('a'))
  app.get('/ws/b', { websocket: true, permissions: [] }, (socket) => socket.send('b'))
  app.get('/ws/standard', { websocket: true, authenticatorClass: ChanxAuthenticator }, (socket) => socket.send('standard'))
  await app.ready()
  for (const path of ['/ws/a', '/ws/b']) {
    const bob = await injectRefused(app, path, { headers: { 'x-user': 'bob' } })
    t.same(bob.messages, [NOT_ACTIVE], path)
    t.equal(bob.code, 4403)
  }
  const alice = await injectSocket(app, '/ws/a', { headers: { 'x-user': 'alice' } })
  await alice.waitForMessages(2)
  t.same(alice.messages, [OK_MESSAGE, 'a'])
  const standard = await injectSocket(app, '/ws/standard', { headers: { 'x-user': 'bob' } })
  await standard.waitForMessages(2)
  t.same(standard.messages, [OK_MESSAGE, 'standard'], 'a route\'s own class replaces the plugin\'s')
})

test('the custom class gets the route\'s resolved authentication, permissions and objectLoader', async (t) => {
  let seen: ChanxAuthenticator | undefined
  class Spy extends ChanxAuthenticator {
    constructor (config: ConstructorParameters<typeof ChanxAuthenticator>[0]) {
      super(config)
      seen = this
    }
  }
  const loader = (): { id: number } => ({ id: 7 })
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, authentication: [headerUser], permissions: [IsAuthenticated], objectLoader: loader, authenticatorClass: Spy }, () => {})
  await app.ready()
  t.same(seen?.authentication, [headerUser])
  t.same(seen?.permissions, [IsAuthenticated])
  t.equal(seen?.objectLoader, loader)
  t.equal(seen?.challenge, undefined)
})

test('a custom result\'s status, text and data go out on the wire as given', async (t) => {
  class Teapot extends ChanxAuthenticator {
    override async authenticate () {
      return new AuthenticationResult({ isAuthenticated: false, statusCode: 418, statusText: 'I\'m a teapot', data: { detail: 'Short and stout', retry: false } })
    }
  }
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, authenticatorClass: Teapot }, () => t.fail('handler ran'))
  app.get('/api', { authenticatorClass: Teapot }, async () => 'never')
  await app.ready()
  const socket = await injectRefused(app, '/ws')
  t.same(socket.messages, ['{"action":"authentication","payload":{"status_code":418,"status_text":"I\'m a teapot","data":{"detail":"Short and stout","retry":false}}}'])
  t.equal(socket.code, 4418)
  const http = await app.inject('/api')
  t.equal(http.statusCode, 418)
  t.equal(http.body, '{"detail":"Short and stout","retry":false}')
})

test('a custom success sets request.user and request.obj and may carry its own data', async (t) => {
  class Fixed extends ChanxAuthenticator {
    override async authenticate () {
      return new AuthenticationResult({ isAuthenticated: true, statusCode: 200, data: { detail: 'OK', role: 'guest' }, user: { name: 'guest' }, obj: { id: 'room' } })
    }
  }
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, authenticatorClass: Fixed }, (socket, request) => socket.send(JSON.stringify([request.user, request.obj])))
  await app.ready()
  const socket = await injectSocket(app, '/ws')
  await socket.waitForMessages(2)
  t.same(socket.messages, [
    '{"action":"authentication","payload":{"status_code":200,"status_text":"OK","data":{"detail":"OK","role":"guest"}}}',
    '[{"name":"guest"},{"id":"room"}]'
  ])
})

test('AuthenticationResult fills statusText and data from the status code', async (t) => {
  const result = new AuthenticationResult({ isAuthenticated: false, statusCode: 404 })
  t.equal(result.statusText, 'Not Found')
  t.same(result.data, { detail: 'Not Found' })
  t.equal(result.user, null)
  t.equal(result.obj, null)
})

test('a protected step can be overridden on its own', async (t) => {
  class FromHeader extends ChanxAuthenticator {
    protected override async loadObject (request: FastifyRequest): Promise<unknown> {
      return { id: request.headers['x-room'] ?? 'default' }
    }
  }
  const app = await buildApp(t)
  app.get('/ws', { websocket: true, authenticatorClass: FromHeader }, (socket, request) => socket.send(JSON.stringify(request.obj)))
  await app.ready()
  const socket = await injectSocket(app, '/ws', { headers: { 'x-room': 'r1' } })
  await socket.waitForMessages(2)
  t.same(socket.messages, [OK_MESSAGE, '{"id":"r1"}'])
})

test('a custom authenticator that returns something else than an AuthenticationResult refuses with 4500', async (t) => {
  const { lines, logger } = captureLogs()
  class Sloppy extends ChanxAuthenticator {
    override async authenticate () {
      return { isAuthenticated: true, user: { name: 'x' } } as unknown as AuthenticationResult
    }
  }
  class Nothing extends ChanxAuthenticator {
    override async authenticate () {
      return undefined as unknown as AuthenticationResult
    }
  }
  const app = await buildApp(t, { server: { logger } })
  app.get('/ws/sloppy', { websocket: true, authenticatorClass: Sloppy }, () => t.fail('handler ran'))
  app.get('/ws/nothing', { websocket: true, authenticatorClass: Nothing }, () => t.fail('handler ran'))
  app.get('/api/sloppy', { authenticatorClass: Sloppy }, async () => 'never')
  await app.ready()
  for (const path of ['/ws/sloppy', '/ws/nothing']) {
    const socket = await injectRefused(app, path)
    t.same(socket.messages, [INTERNAL_500], path)
    t.equal(socket.code, 4500)
  }
  const http = await app.inject('/api/sloppy')
  t.equal(http.statusCode, 500)
  t.equal(http.body, '{"detail":"Internal server error"}')
  t.ok(lines.some((line) => String(line.msg).includes('did not return an AuthenticationResult')), 'the mistake is logged')
})

test('a custom authenticator that throws refuses with 4500', async (t) => {
  class Throws extends ChanxAuthenticator {
    override async authenticate (): Promise<AuthenticationResult> {
      throw new Error('module registry offline')
    }
  }
  const socket = await refusedRoute(t, { authenticatorClass: Throws })
  t.same(socket.messages, [INTERNAL_500])
  t.equal(socket.code, 4500)
})

test('the custom authenticator serves HTTP routes too', async (t) => {
  const app = await buildApp(t)
  app.get('/api', { authentication: [headerUser], permissions: [IsAuthenticated], authenticatorClass: MyAuthenticator }, async (request) => ({ user: (request.user as User).name }))
  await app.ready()
  const bob = await app.inject({ url: '/api', headers: { 'x-user': 'bob' } })
  t.equal(bob.statusCode, 403)
  t.equal(bob.body, '{"detail":"User is not active in this module"}')
  const alice = await app.inject({ url: '/api', headers: { 'x-user': 'alice' } })
  t.equal(alice.statusCode, 200)
  t.equal(alice.body, '{"user":"alice"}')
})
