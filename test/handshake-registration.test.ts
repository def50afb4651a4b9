import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import chanx, {
  AllowAny,
  ChanxAuthenticator,
  fastifyChanx,
  jwtAuthentication,
  sessionAuthentication,
  type FastifyChanxOptions,
  type JwtAuthenticationOptions,
  type SessionAuthenticationOptions
} from '../plugin'
import { INTERNAL_500, buildApp, captureLogs, injectRefused, refusedRoute } from './helpers/handshake'

test('default and named exports are the same fastify-plugin', async (t) => {
  t.equal(chanx, fastifyChanx)
  const meta = (chanx as unknown as Record<symbol, { name?: string, fastify?: string }>)[Symbol.for('plugin-meta')]
  t.equal(meta?.name, 'fastify-chanx')
  t.equal(meta?.fastify, '5.x')
})

test('registering without @fastify/websocket fails with FST_CHANX_MISSING_WEBSOCKET', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(chanx)
  await t.rejects(async () => { await app.ready() }, { code: 'FST_CHANX_MISSING_WEBSOCKET', message: /register @fastify\/websocket before fastify-chanx/ })
})

async function registerWith (t: Parameters<typeof buildApp>[0], options: unknown): Promise<unknown> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  try {
    await app.register(chanx, options as FastifyChanxOptions)
    await app.ready()
  } catch (err) {
    return err
  }
  return null
}

test('bad plugin options fail registration with FST_CHANX_INVALID_OPTION naming the option', async (t) => {
  class NotAnAuthenticator {}
  const cases: Array<[string, unknown, RegExp]> = [
    ['an unknown key', { authentications: [] }, /unknown option "authentications"/],
    ['a non-array authentication', { authentication: sessionAuthentication() }, /option authentication must be an array/],
    ['an authenticator without authenticate()', { authentication: [{}] }, /option authentication\[0\] must be an object with authenticate\(request\)/],
    ['a non-string challenge', { authentication: [{ authenticate: () => null, challenge: 1 }] }, /option authentication\[0\]\.challenge/],
    ['a non-array permissions', { permissions: AllowAny }, /option permissions must be an array/],
    ['a bad permission', { permissions: [AllowAny, { hasPermission: true }] }, /option permissions\[1\]/],
    ['a null permission', { permissions: [null] }, /option permissions\[0\]/],
    ['a bad authenticatorClass', { authenticatorClass: NotAnAuthenticator }, /option authenticatorClass must be a class that extends ChanxAuthenticator/],
    ['a non-class authenticatorClass', { authenticatorClass: {} }, /option authenticatorClass/],
    ['a bad httpRoutes', { httpRoutes: 'some' }, /option httpRoutes must be "opt-in" or "all"/],
    ['a non-boolean sendAuthenticationMessage', { sendAuthenticationMessage: 'no' }, /option sendAuthenticationMessage must be a boolean/],
    ['a non-boolean rejectUpgrade', { rejectUpgrade: 1 }, /option rejectUpgrade must be a boolean/]
  ]
  for (const [name, options, message] of cases) {
    const err = await registerWith(t, options)
    t.match(err, { code: 'FST_CHANX_INVALID_OPTION', message }, name)
  }
})

test('good plugin options register', async (t) => {
  class Mine extends ChanxAuthenticator {}
  t.equal(await registerWith(t, {}), null)
  t.equal(await registerWith(t, { authentication: [], permissions: [], authenticatorClass: Mine, httpRoutes: 'all', sendAuthenticationMessage: false, rejectUpgrade: true }), null)
  t.equal(await registerWith(t, { authenticatorClass: ChanxAuthenticator }), null)
})

test('bad route options throw when the route is declared', async (t) => {
  const app = await buildApp(t)
  const handler = (): void => {}
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['authentication', { authentication: 'session' }, /route GET \/ws\/1: authentication must be an array/],
    ['authenticator', { authentication: [{ authenticate: 'yes' }] }, /authentication\[0\] must be an object with authenticate/],
    ['permissions', { permissions: [{ hasObjectPermission: 42 }] }, /permissions\[0\]/],
    ['objectLoader', { objectLoader: { id: 1 } }, /objectLoader must be a function/],
    ['authenticatorClass', { authenticatorClass: class {} }, /authenticatorClass must be a class that extends ChanxAuthenticator/],
    ['sendAuthenticationMessage', { sendAuthenticationMessage: 'yes' }, /sendAuthenticationMessage must be a boolean/],
    ['rejectUpgrade', { rejectUpgrade: null }, /rejectUpgrade must be a boolean/]
  ]
  let n = 0
  for (const [name, options, message] of cases) {
    n++
    t.throws(() => app.get(`/ws/${n}`, { websocket: true, ...options } as never, handler), { code: 'FST_CHANX_INVALID_OPTION', message }, name)
  }
  t.throws(() => app.get('/api', { permissions: 'all' } as never, async () => 'x'), { code: 'FST_CHANX_INVALID_OPTION', message: /route GET \/api: permissions/ }, 'on HTTP routes too')
})

test('jwtAuthentication refuses bad options', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ header: 'yes' }, /jwtAuthentication\(\{ header \}\) must be a boolean/],
    [{ query: '' }, /jwtAuthentication\(\{ query \}\)/],
    [{ query: 1 }, /jwtAuthentication\(\{ query \}\)/],
    [{ cookie: 5 }, /jwtAuthentication\(\{ cookie \}\)/],
    [{ cookie: { signed: true } }, /jwtAuthentication\(\{ cookie \}\)/],
    [{ loadUser: 'users' }, /jwtAuthentication\(\{ loadUser \}\)/],
    [{ challenge: 5 }, /jwtAuthentication\(\{ challenge \}\)/],
    [{ protocol: 'bad prefix' }, /jwtAuthentication\(\{ protocol \}\)/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => jwtAuthentication(options as JwtAuthenticationOptions), { code: 'FST_CHANX_INVALID_OPTION', message }, JSON.stringify(options))
  }
  t.equal(jwtAuthentication().challenge, 'Bearer realm="api"')
  t.equal(jwtAuthentication({ challenge: false }).challenge, undefined)
  t.equal(jwtAuthentication({ challenge: 'Bearer realm="chat"' }).challenge, 'Bearer realm="chat"')
})

test('sessionAuthentication refuses bad options', async (t) => {
  t.throws(() => sessionAuthentication({ key: '' }), { code: 'FST_CHANX_INVALID_OPTION', message: /sessionAuthentication\(\{ key \}\)/ })
  t.throws(() => sessionAuthentication({ key: 3 } as unknown as SessionAuthenticationOptions), { code: 'FST_CHANX_INVALID_OPTION' })
  t.throws(() => sessionAuthentication({ loadUser: 1 } as unknown as SessionAuthenticationOptions), { code: 'FST_CHANX_INVALID_OPTION', message: /sessionAuthentication\(\{ loadUser \}\)/ })
  t.equal(sessionAuthentication().challenge, undefined, 'no challenge: anonymous is 403')
})

test('sessionAuthentication without @fastify/session answers 500 and logs which plugin is missing', async (t) => {
  const { lines, logger } = captureLogs()
  const app = await buildApp(t, { auth: false, server: { logger } })
  app.get('/ws', { websocket: true, authentication: [sessionAuthentication()] }, () => t.fail('handler ran'))
  app.get('/api', { authentication: [sessionAuthentication()] }, async () => 'never')
  await app.ready()
  const socket = await injectRefused(app, '/ws')
  t.same(socket.messages, [INTERNAL_500])
  t.equal(socket.code, 4500)
  const http = await app.inject('/api')
  t.equal(http.statusCode, 500)
  t.equal(http.body, '{"detail":"Internal server error"}')
  const line = lines.find((entry) => JSON.stringify(entry).includes('@fastify/session'))
  t.ok(line, 'a log line names @fastify/session')
  t.match(line, { err: { code: 'FST_CHANX_MISSING_DEPENDENCY' } })
})

test('jwtAuthentication without @fastify/jwt answers 500 and logs which plugin is missing', async (t) => {
  const { lines, logger } = captureLogs()
  const socket = await refusedRoute(t, { authentication: [jwtAuthentication()] }, { auth: false, server: { logger } })
  t.same(socket.messages, [INTERNAL_500])
  t.equal(socket.code, 4500)
  t.ok(lines.some((entry) => JSON.stringify(entry).includes('@fastify/jwt')), 'a log line names @fastify/jwt')
})
