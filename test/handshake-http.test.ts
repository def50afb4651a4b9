import { test } from 'tap'
import { AllowAny, DenyAll, IsAuthenticated, jwtAuthentication, sessionAuthentication } from '../plugin'
import { buildApp, cookieHeader, headerUser } from './helpers/handshake'

test('an HTTP route with the same options answers 401 with WWW-Authenticate and {"detail"}', async (t) => {
  const app = await buildApp(t)
  let calls = 0
  app.get('/api/me', { authentication: [jwtAuthentication()], permissions: [IsAuthenticated] }, async () => { calls++; return 'never' })
  await app.ready()
  const response = await app.inject('/api/me')
  t.equal(response.statusCode, 401)
  t.equal(response.headers['www-authenticate'], 'Bearer realm="api"')
  t.match(response.headers['content-type'], /^application\/json/)
  t.equal(response.body, '{"detail":"Authentication credentials were not provided."}')
  t.equal(calls, 0)
})

test('an HTTP route answers 403, 404 and 500 with {"detail"}', async (t) => {
  const app = await buildApp(t)
  app.get('/api/denied', { authentication: [headerUser], permissions: [DenyAll] }, async () => 'never')
  app.get('/api/anonymous', { authentication: [sessionAuthentication()], permissions: [IsAuthenticated] }, async () => 'never')
  app.get('/api/missing', { objectLoader: () => null }, async () => 'never')
  app.get('/api/broken', { authentication: [{ authenticate () { throw new Error('secret internals') } }] }, async () => 'never')
  await app.ready()
  const denied = await app.inject({ url: '/api/denied', headers: { 'x-user': 'alice' } })
  t.equal(denied.statusCode, 403)
  t.equal(denied.body, '{"detail":"You do not have permission to perform this action."}')
  const anonymous = await app.inject('/api/anonymous')
  t.equal(anonymous.statusCode, 403)
  t.equal(anonymous.body, '{"detail":"Authentication credentials were not provided."}')
  const missing = await app.inject('/api/missing')
  t.equal(missing.statusCode, 404)
  t.equal(missing.body, '{"detail":"Not found."}')
  const broken = await app.inject('/api/broken')
  t.equal(broken.statusCode, 500)
  t.equal(broken.body, '{"detail":"Internal server error"}')
})

test('an accepted HTTP request runs its handler with request.user and request.obj', async (t) => {
  const app = await buildApp(t)
  app.get('/api/rooms/:id', {
    authentication: [headerUser],
    permissions: [IsAuthenticated],
    objectLoader: (request) => ({ id: (request.params as { id: string }).id })
  }, async (request) => ({ user: request.user, obj: request.obj }))
  await app.ready()
  const response = await app.inject({ url: '/api/rooms/7', headers: { 'x-user': 'alice' } })
  t.equal(response.statusCode, 200)
  t.equal(response.body, '{"user":{"name":"alice"},"obj":{"id":"7"}}')
})

test('one set of rules serves a session login, the REST API and the JWT alike', async (t) => {
  const app = await buildApp(t)
  const authentication = [sessionAuthentication(), jwtAuthentication()]
  app.post('/login', async (request) => { request.session.set('userId' as never, 'alice' as never); return 'ok' })
  app.get('/api/me', { authentication, permissions: [IsAuthenticated] }, async (request) => ({ user: request.user }))
  await app.ready()
  const login = await app.inject({ method: 'POST', url: '/login' })
  const bySession = await app.inject({ url: '/api/me', headers: { cookie: cookieHeader(login.cookies) } })
  t.equal(bySession.statusCode, 200)
  t.equal(bySession.body, '{"user":"alice"}')
  const byToken = await app.inject({ url: '/api/me', headers: { authorization: `Bearer ${app.jwt.sign({ sub: 'bob' })}` } })
  t.equal(byToken.statusCode, 200)
  t.match(JSON.parse(byToken.body), { user: { sub: 'bob' } })
})

test('HTTP routes without chanx options are untouched by the plugin defaults', async (t) => {
  const app = await buildApp(t, { chanx: { authentication: [headerUser], permissions: [DenyAll] } })
  app.get('/health', async (request) => ({ ok: true, user: request.user ?? null }))
  app.get('/api/guarded', { permissions: [IsAuthenticated] }, async () => 'in')
  await app.ready()
  const health = await app.inject({ url: '/health', headers: { 'x-user': 'alice' } })
  t.equal(health.statusCode, 200)
  t.equal(health.body, '{"ok":true,"user":null}')
  const guarded = await app.inject({ url: '/api/guarded', headers: { 'x-user': 'alice' } })
  t.equal(guarded.statusCode, 200, 'an opted-in route takes the default authenticators and its own permissions')
  t.equal(guarded.body, 'in')
})

test('httpRoutes: "all" applies the plugin defaults to every HTTP route', async (t) => {
  const app = await buildApp(t, { chanx: { httpRoutes: 'all', authentication: [headerUser], permissions: [IsAuthenticated] } })
  app.get('/api/any', async (request) => ({ user: request.user }))
  app.get('/api/public', { permissions: [AllowAny] }, async (request) => ({ user: request.user }))
  await app.ready()
  const anonymous = await app.inject('/api/any')
  t.equal(anonymous.statusCode, 403)
  t.equal(anonymous.body, '{"detail":"Authentication credentials were not provided."}')
  const alice = await app.inject({ url: '/api/any', headers: { 'x-user': 'alice' } })
  t.equal(alice.statusCode, 200)
  t.equal(alice.body, '{"user":{"name":"alice"}}')
  const open = await app.inject('/api/public')
  t.equal(open.statusCode, 200)
  t.equal(open.body, '{"user":null}')
})

test('the pipeline answers before body validation: no credentials is 401, not 400', async (t) => {
  const app = await buildApp(t)
  app.post('/api/items', {
    authentication: [jwtAuthentication()],
    permissions: [IsAuthenticated],
    schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } }
  }, async () => 'created')
  await app.ready()
  const response = await app.inject({ method: 'POST', url: '/api/items', payload: {} })
  t.equal(response.statusCode, 401)
  const valid = await app.inject({ method: 'POST', url: '/api/items', payload: {}, headers: { authorization: `Bearer ${app.jwt.sign({ sub: 'a' })}` } })
  t.equal(valid.statusCode, 400, 'an authenticated request reaches validation')
})

test('an existing preValidation hook of the route runs after the pipeline', async (t) => {
  const app = await buildApp(t)
  const order: string[] = []
  app.get('/api', {
    authentication: [headerUser],
    permissions: [IsAuthenticated],
    preValidation: async (request) => { order.push(`route hook sees ${JSON.stringify(request.user)}`) }
  }, async () => 'in')
  await app.ready()
  const refused = await app.inject('/api')
  t.equal(refused.statusCode, 403)
  t.same(order, [], 'a refused request never reaches the route\'s own hook')
  const response = await app.inject({ url: '/api', headers: { 'x-user': 'alice' } })
  t.equal(response.statusCode, 200)
  t.same(order, ['route hook sees {"name":"alice"}'])
})
