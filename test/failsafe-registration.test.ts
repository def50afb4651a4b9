import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx, { AllowAny, ChanxAuthenticator, IsAuthenticated, and, jwtAuthentication, not, or, sessionAuthentication, type FastifyChanxOptions } from '../plugin'
import { Type } from '@sinclair/typebox'
import { buildApp, captureLogs, closeApp, listen, serverUrl } from './helpers/handshake'

const INTERNAL_BODY = '{"detail":"Internal server error"}'
const IsOwner = { hasObjectPermission: (request: { user: unknown }, obj: { owner: unknown }) => obj.owner === request.user }

/** Opens `path` on the listening app with a real client: the HTTP status of a refused upgrade, or 101. */
function upgradeStatus (app: Parameters<typeof serverUrl>[0], path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(serverUrl(app, path), { handshakeTimeout: 2000 })
    ws.on('error', () => {})
    ws.once('open', () => { ws.terminate(); resolve(101) })
    ws.once('unexpected-response', (req, res) => { req.destroy(); resolve(res.statusCode ?? 0) })
    setTimeout(() => reject(new Error('no answer within 2000 ms')), 2000).unref()
  })
}

test('a socket route declared before register(chanx) is refused 500, never served anonymously', async (t) => {
  const { lines, logger } = captureLogs()
  const app = Fastify({ logger })
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  let ran = 0
  app.get('/ws', { websocket: true, permissions: [IsAuthenticated] }, (socket) => { ran++; socket.close() })
  app.get('/api', async () => 'plain')
  await app.register(chanx)
  await listen(app)
  t.equal(await upgradeStatus(app, '/ws?token=secret'), 500)
  t.equal(ran, 0, 'the handler never ran')
  t.equal((await app.inject('/api')).body, 'plain', 'plain HTTP routes declared before still work (opt-in)')
  const line = lines.find((entry) => JSON.stringify(entry).includes('FST_CHANX_UNSEEN_ROUTE'))
  t.match(line, { err: { code: 'FST_CHANX_UNSEEN_ROUTE', message: /route GET \/ws was declared where fastify-chanx did not see it.*await app\.register\(chanx\)/ } })
  t.notOk(JSON.stringify(lines).includes('secret'), 'the token is not logged')
})

test('a socket route declared after an unawaited register(chanx) is refused 500 (injectWS too)', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  app.register(chanx)
  let ran = 0
  app.get('/ws', { websocket: true, authentication: [sessionAuthentication()], permissions: [IsAuthenticated] }, (socket) => { ran++; socket.close() })
  await app.ready()
  await t.rejects(app.injectWS('/ws'), /Unexpected server response: 500/)
  t.equal(ran, 0)
})

test('a socket route declared in a context made before register(chanx) is refused 500', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  let ran = 0
  await app.register(async (routes) => {
    routes.get('/ws', { websocket: true, permissions: [IsAuthenticated] }, (socket) => { ran++; socket.close() })
  })
  await app.register(chanx)
  await app.ready()
  await t.rejects(app.injectWS('/ws'), /Unexpected server response: 500/)
  t.equal(ran, 0, 'the handler never ran')
})

test('a socket route in a sibling context the plugin does not cover is refused 500 before its handler runs', async (t) => {
  const { lines, logger } = captureLogs()
  const app = Fastify({ logger })
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  let ran = 0
  app.register(async (guarded) => {
    await guarded.register(chanx)
    guarded.get('/guarded', { websocket: true }, (socket) => socket.close())
  })
  app.register(async (other) => {
    other.get('/ws', { websocket: true, permissions: [IsAuthenticated] }, (socket) => { ran++; socket.close() })
  })
  await listen(app)
  t.equal(await upgradeStatus(app, '/ws?token=secret'), 500)
  await t.rejects(app.injectWS('/ws'), /Unexpected server response: 500/)
  t.equal(ran, 0, 'the handler never ran')
  t.equal(await upgradeStatus(app, '/guarded'), 101, 'the covered context still works')
  t.match(lines.find((entry) => JSON.stringify(entry).includes('FST_CHANX_UNSEEN_ROUTE')), { err: { code: 'FST_CHANX_UNSEEN_ROUTE', message: /the socket route GET \/ws was declared/ } })
  t.notOk(JSON.stringify(lines).includes('secret'), 'the token is not logged')
})

test('with httpRoutes "all", an HTTP route declared before register(chanx) is refused 500', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  app.get('/api', { permissions: [IsAuthenticated] }, async () => 'secret data')
  await app.register(chanx, { httpRoutes: 'all', permissions: [IsAuthenticated] })
  app.get('/after', async () => 'after')
  await app.ready()
  const before = await app.inject('/api')
  t.equal(before.statusCode, 500)
  t.equal(before.body, INTERNAL_BODY)
  t.equal((await app.inject('/after')).statusCode, 403, 'a route declared after runs the pipeline')
})

test('routes declared after an awaited register keep working, HEAD and 404 included', async (t) => {
  const app = await buildApp(t, { auth: false })
  app.get('/ws', { websocket: true }, (socket) => socket.close())
  await app.ready()
  const socket = await app.injectWS('/ws')
  socket.terminate()
  t.equal((await app.inject('/missing')).statusCode, 404)
})

async function registrationError (options: FastifyChanxOptions, declare: (app: ReturnType<typeof Fastify>) => void): Promise<unknown> {
  const app = Fastify()
  try {
    await app.register(websocket)
    await app.register(chanx, options)
    declare(app)
    await app.ready()
    return null
  } catch (err) {
    return err
  } finally {
    await app.close()
  }
}

test('an object permission on a route without objectLoader fails at registration', async (t) => {
  const handler = (): void => {}
  const cases: Array<[string, FastifyChanxOptions, Record<string, unknown>, RegExp]> = [
    ['route permission', {}, { permissions: [IsAuthenticated, IsOwner] }, /route GET \/ws: permissions\[1\] checks objects \(hasObjectPermission\) but the route has no objectLoader/],
    ['inside and()', {}, { permissions: [and(IsAuthenticated, IsOwner)] }, /permissions\[0\] checks objects/],
    ['inside or()', {}, { permissions: [or(AllowAny, IsOwner)] }, /permissions\[0\] checks objects/],
    ['inside not()', {}, { permissions: [not(IsOwner)] }, /permissions\[0\] checks objects/],
    ['nested', {}, { permissions: [or(IsAuthenticated, and(AllowAny, not(IsOwner)))] }, /permissions\[0\] checks objects/],
    ['from the plugin defaults', { permissions: [IsOwner] }, {}, /the plugin's default permissions\[0\] checks objects/]
  ]
  for (const [name, options, route, message] of cases) {
    const err = await registrationError(options, (app) => app.get('/ws', { websocket: true, ...route } as never, handler))
    t.match(err, { code: 'FST_CHANX_INVALID_OPTION', message }, name)
  }
  const http = await registrationError({}, (app) => app.get('/api', { permissions: [IsOwner] } as never, async () => 'x'))
  t.match(http, { code: 'FST_CHANX_INVALID_OPTION', message: /route GET \/api: permissions\[0\] checks objects/ }, 'on HTTP routes too')
  t.equal(await registrationError({}, (app) => app.get('/ws/:id', { websocket: true, permissions: [IsOwner], objectLoader: () => ({ owner: 1 }) } as never, handler)), null, 'with a loader it registers')
  t.equal(await registrationError({}, (app) => app.get('/ws', { websocket: true, permissions: [and(IsAuthenticated, not(IsAuthenticated))] } as never, handler)), null, 'compositions without object checks register')
  class LoadsItsOwn extends ChanxAuthenticator {
    protected override async loadObject (): Promise<null> { return null }
  }
  t.equal(await registrationError({}, (app) => app.get('/ws', { websocket: true, permissions: [IsOwner], authenticatorClass: LoadsItsOwn } as never, handler)), null, 'a class that overrides loadObject loads its own')
})

test('a permission that checks nothing, or an authenticator among permissions, fails at registration (and the reverse)', async (t) => {
  const handler = (): void => {}
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an empty permission', { permissions: [{}] }, /permissions\[0\] has neither hasPermission\(request\) nor hasObjectPermission\(request, obj\): it would allow everyone/],
    ['a misspelled method', { permissions: [{ haspermission: () => false }] }, /permissions\[0\] has neither/],
    ['an authenticator as a permission', { permissions: [sessionAuthentication()] }, /permissions\[0\] is an authenticator \(it has authenticate\(request\)\): put it in authentication/],
    ['a permission as an authenticator', { authentication: [IsAuthenticated] }, /authentication\[0\] is a permission \(it has hasPermission\/hasObjectPermission\): put it in permissions/]
  ]
  for (const [name, route, message] of cases) {
    const err = await registrationError({}, (app) => app.get('/ws', { websocket: true, ...route } as never, handler))
    t.match(err, { code: 'FST_CHANX_INVALID_OPTION', message }, name)
  }
  t.match(await registrationError({ permissions: [jwtAuthentication()] } as never, () => {}), { code: 'FST_CHANX_INVALID_OPTION', message: /option permissions\[0\] is an authenticator/ }, 'in plugin options too')
  t.throws(() => and({} as never), { code: 'FST_CHANX_INVALID_OPTION', message: /and\(\) operand has neither/ }, 'and inside compositions')
})

test('a near miss of a route option fails at registration with "did you mean"', async (t) => {
  const cases: Array<[string, string]> = [
    ['permision', 'permissions'],
    ['objectloader', 'objectLoader'],
    ['authentications', 'authentication'],
    ['sendAuthenticatonMessage', 'sendAuthenticationMessage'],
    ['Permissions', 'permissions'],
    ['rejectUpgarde', 'rejectUpgrade'],
    ['group', 'groups'],
    // Options added after the list was first written: the list now comes from the option interfaces.
    ['maxQueuedFrame', 'maxQueuedFrames'],
    ['objectname', 'objectName'],
    ['Strict', 'strict']
  ]
  for (const [key, close] of cases) {
    const err = await registrationError({}, (app) => app.get('/api', { [key]: [IsAuthenticated] } as never, async () => 'x'))
    t.match(err, { code: 'FST_CHANX_INVALID_OPTION', message: new RegExp(`route GET /api: unknown route option "${key}"; did you mean "${close}"\\?`) }, key)
  }
  for (const key of ['schema', 'config', 'handler', 'onSend', 'constraints', 'exposeHeadRoute', 'myPluginOption', 'cors']) {
    const value = key === 'handler' ? async () => 'x' : key === 'onSend' ? [] : key === 'exposeHeadRoute' ? true : {}
    t.equal(await registrationError({}, (app) => app.route({ method: 'GET', url: '/api', handler: async () => 'x', [key]: value } as never)), null, `${key} is not flagged`)
  }
})

test('a near miss of a plugin option fails with "did you mean"', async (t) => {
  const err = await registrationError({ permision: [] } as never, () => {})
  t.match(err, { code: 'FST_CHANX_INVALID_OPTION', message: /unknown option "permision"; did you mean "permissions"\? expected one of/ })
  t.match(await registrationError({ totallyUnrelated: 1 } as never, () => {}), { message: /unknown option "totallyUnrelated"; expected one of/ })
  t.match(await registrationError({ handshakeTimout: 1 } as never, () => {}), { message: /unknown option "handshakeTimout"; did you mean "handshakeTimeout"\?/ })
  t.match(await registrationError({ channelSecrets: 'x' } as never, () => {}), { message: /unknown option "channelSecrets"; did you mean "channelSecret"\?/ })
})

test('actions named after server messages are refused at registration; ping may be replaced', async (t) => {
  const handler = (): void => {}
  const schema = Type.Object({})
  for (const name of ['authentication', 'error', 'complete', 'pong']) {
    const err = await registrationError({}, (app) => app.get('/ws', { websocket: true, messages: { [name]: schema }, handlers: { [name]: () => null } } as never, handler))
    t.match(err, { code: 'FST_CHANX_INVALID_OPTION', message: new RegExp(`route GET /ws: messages: "${name}" is a message the server itself sends`) }, name)
    const outgoing = await registrationError({}, (app) => app.get('/ws', { websocket: true, messages: {}, outgoing: { [name]: schema } } as never, handler))
    t.match(outgoing, { code: 'FST_CHANX_INVALID_OPTION', message: new RegExp(`outgoing: "${name}" is a message the server itself sends`) }, `outgoing ${name}`)
  }
  const refresh = await registrationError({}, (app) => app.get('/ws', { websocket: true, authentication: [jwtAuthentication()], messages: { authenticate: schema }, handlers: { authenticate: () => null } } as never, handler))
  t.match(refresh, { code: 'FST_CHANX_INVALID_OPTION', message: /"authenticate" is the built-in in-band token refresh/ })
  t.equal(await registrationError({}, (app) => app.get('/ws', { websocket: true, messages: { ping: schema, authenticate: schema }, handlers: { ping: () => null, authenticate: () => null } } as never, handler)), null,
    'ping, and authenticate without in-band refresh, may be declared')
})

test('messages on an HTTP route fail at registration even with no other option', async (t) => {
  const err = await registrationError({}, (app) => app.get('/api', { messages: {} } as never, async () => 'x'))
  t.match(err, { code: 'FST_CHANX_INVALID_OPTION', message: /route GET \/api: messages are only for WebSocket routes/ })
  const groups = await registrationError({}, (app) => app.get('/api', { groups: () => [] } as never, async () => 'x'))
  t.match(groups, { code: 'FST_CHANX_INVALID_OPTION', message: /route GET \/api: groups are only for WebSocket routes/ })
})
