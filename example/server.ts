// A small chat app on fastify-chanx: REST login and logout (session cookie and HTTP-only JWT cookie), users,
// rooms and membership in SQLite, room sockets guarded by the same rules as the REST API, broadcast to the
// room, and one static page. `npm run example`; set REDIS_URL to carry rooms across processes.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import cookie from '@fastify/cookie'
import session from '@fastify/session'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import rateLimit from '@fastify/rate-limit'
import { Type } from '@sinclair/typebox'
import { buildSync } from 'esbuild'
import chanx, {
  IsAuthenticated,
  defineSocketRoute,
  jwtAuthentication,
  sessionAuthentication,
  type Permission
} from 'fastify-chanx'
import { openStore, type ChatMessage, type Room, type User } from './db'
import { chanxMetrics } from './metrics'

declare module 'fastify-chanx' {
  interface ChanxTypes { user: User | null, obj: Room | null }
}
declare module '@fastify/jwt' {
  interface FastifyJWT { user: User | null }
}
declare module 'fastify' {
  interface Session { userId?: number }
}

export interface ExampleOptions {
  dbPath?: string
  redisUrl?: string
  logLevel?: string
  /** Login attempts allowed per IP per minute, and per username per 15 minutes (env LOGIN_LIMIT_PER_IP, LOGIN_LIMIT_PER_USER). */
  loginLimits?: { perIp?: number, perUser?: number }
}

// Embedded defaults so the example runs with nothing to set up; a real app reads these from its secrets.
const SESSION_SECRET = process.env.SESSION_SECRET ?? 'example-session-secret-at-least-32-characters'
const JWT_SECRET = process.env.JWT_SECRET ?? 'example-jwt-secret-at-least-32-characters-long'
const SESSION_MAX_AGE_MS = 60 * 60 * 1000
// The lifetime of the JWTs the example signs, in seconds (env TOKEN_TTL): an hour, or a few seconds to watch
// a page in token mode refresh its socket's token in-band.
const TOKEN_TTL_S = Number(process.env.TOKEN_TTL) > 0 ? Number(process.env.TOKEN_TTL) : 3600
const LOGIN_LIMIT_PER_IP = 30
const LOGIN_LIMIT_PER_USER = 10

/**
 * Refuses a state-changing request that a browser sent from another origin (a form or a no-cors fetch on
 * another site, or on a sibling origin of the same site, which SameSite=Lax cookies do not stop), and any
 * such request whose body is not JSON: a cross-site form can only send `text/plain`, urlencoded or multipart,
 * and a cross-site `application/json` fetch needs a CORS preflight this app never grants. Browsers say where
 * a request comes from in `Sec-Fetch-Site` (all current ones) or at least `Origin` (on every POST); a client
 * that sends neither is no browser, so carries no cookie it did not choose to send. A CSRF token would
 * need a session before login, which the example does not create (`saveUninitialized: false`).
 */
function refuseCrossSiteWrites (request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS') return done()
  const site = request.headers['sec-fetch-site']
  const origin = request.headers.origin
  const crossSite = site !== undefined
    ? site !== 'same-origin' && site !== 'none'
    : origin !== undefined && origin !== `${request.protocol}://${request.host}`
  if (crossSite) {
    reply.code(403).send({ detail: 'Cross-site request refused.' })
    return
  }
  const type = request.headers['content-type']
  if (type === undefined || !/^application\/json\s*(;|$)/i.test(type)) {
    reply.code(415).send({ detail: 'Send JSON: content-type application/json.' })
    return
  }
  done()
}

const page = readFileSync(join(__dirname, 'public', 'index.html'), 'utf8')

/**
 * The page talks through fastify-chanx/client, bundled for the browser once, on first use (esbuild comes with
 * tsx, which runs the example). A real app bundles `fastify-chanx/client` with the rest of its front end.
 */
let clientBundle: string | undefined
function browserClient (): string {
  clientBundle ??= buildSync({
    entryPoints: [join(__dirname, '..', 'plugin', 'client', 'index.ts')],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent'
  }).outputFiles[0]!.text
  return clientBundle
}

/** A message as the page and the sockets see it: the schema documents `wire`'s result in the AsyncAPI document. */
const WireMessage = Type.Object({ id: Type.Integer(), username: Type.String(), text: Type.String(), createdAt: Type.String() })

function wire (message: ChatMessage) {
  return { id: message.id, username: message.username, text: message.text, createdAt: message.createdAt }
}

export async function buildApp (options: ExampleOptions = {}) {
  const store = openStore(options.dbPath ?? process.env.DB_PATH ?? join(__dirname, 'data', 'chat.db'))
  const app = Fastify({ logger: { level: options.logLevel ?? process.env.LOG_LEVEL ?? 'info' } })
  app.addHook('onClose', async () => { store.close() })

  const IsRoomMember: Permission = {
    message: 'You are not a member of this room.',
    hasObjectPermission: (request, room) => request.user !== null && room !== null && store.isMember(room.id, request.user.id)
  }
  const loadRoom = (request: FastifyRequest<{ Params: { roomId: string } }>) => store.roomBySlug(request.params.roomId)

  await app.register(cookie)
  await app.register(session, {
    secret: SESSION_SECRET,
    store: store.sessions,
    // Only a login creates a session: a visitor without a cookie gets none, and none is stored for them
    // (the default, true, would store one for every cookieless request, bots included).
    saveUninitialized: false,
    // A session lasts as long as the JWT (by default: TOKEN_TTL changes the JWT's), counted from the last
    // request (rolling); the store drops it then.
    cookie: { secure: false, httpOnly: true, sameSite: 'lax', maxAge: SESSION_MAX_AGE_MS }
  })
  await app.register(jwt, { secret: JWT_SECRET, cookie: { cookieName: 'token', signed: false }, sign: { expiresIn: `${TOKEN_TTL_S}s` } })
  await app.register(websocket)
  const loadTokenUser = (payload: unknown) => store.userById(Number((payload as { sub: unknown }).sub))
  await app.register(chanx, {
    // Session first: a browser that logged in carries the session cookie. The JWT cookie, the Bearer
    // header and ?token= serve other clients. (The socket route below reads ?token= before the session.)
    authentication: [
      sessionAuthentication({ key: 'userId', loadUser: (id) => store.userById(Number(id)) }),
      jwtAuthentication({ cookie: 'token', query: 'token', loadUser: loadTokenUser })
    ],
    permissions: [IsAuthenticated],
    // HISTORY=on keeps each room's last broadcasts (1,000, for 2 minutes) so that a page whose connection
    // dropped gets what it missed when it reconnects (docs/recovery.md); off by default, as in the plugin.
    ...(process.env.HISTORY === 'on' ? { history: true } : {}),
    // REDIS_URL carries rooms across processes; unset (or empty), rooms live in this process.
    redis: (options.redisUrl ?? process.env.REDIS_URL) || undefined,
    // The AsyncAPI document of the sockets (/asyncapi.json, /asyncapi.yaml) and a page to try them
    // (/playground); both are off unless set. PLAYGROUND=off turns them off here.
    ...(process.env.PLAYGROUND === 'off'
      ? {}
      : { asyncapi: { path: '/asyncapi', info: { title: 'Example chat', version: '1.0.0' } }, playground: { path: '/playground' } })
  })

  app.addHook('onRequest', refuseCrossSiteWrites)

  // Prometheus metrics from fastify-chanx's diagnostics channels (docs/observability.md). Per process; open
  // here for the example: put it behind your network or an authenticator in production.
  const metrics = chanxMetrics()
  app.addHook('onClose', async () => { metrics.close() })
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()))

  // Login throttling: per IP (before the body is read) and per username (every attempt counts, successes
  // too, and is counted before scrypt runs, so a burst of parallel guesses cannot slip past the count).
  // In memory, per process: with several processes give @fastify/rate-limit a Redis store. Behind a proxy,
  // set Fastify's trustProxy so request.ip is the client's and not the proxy's.
  await app.register(rateLimit, { global: false })
  const limits = {
    perIp: options.loginLimits?.perIp ?? (Number(process.env.LOGIN_LIMIT_PER_IP) || LOGIN_LIMIT_PER_IP),
    perUser: options.loginLimits?.perUser ?? (Number(process.env.LOGIN_LIMIT_PER_USER) || LOGIN_LIMIT_PER_USER)
  }
  const loginsPerIp = app.createRateLimit({ max: limits.perIp, timeWindow: 60_000 })
  const loginsPerUser = app.createRateLimit({
    max: limits.perUser,
    timeWindow: 15 * 60_000,
    keyGenerator: (request) => `login-user:${(request.body as { username: string }).username}`
  })
  const tooMany = (reply: FastifyReply, ttl: number) => reply.code(429).header('retry-after', Math.ceil(ttl / 1000))
    .send({ detail: `Too many login attempts; try again in ${Math.ceil(ttl / 1000)} s.` })

  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(page))
  app.get('/client.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').send(browserClient()))

  app.post<{ Body: { username?: unknown, password?: unknown } }>('/login', {
    onRequest: async (request, reply) => {
      const limit = await loginsPerIp(request)
      if (!limit.isAllowed && limit.isExceeded) return tooMany(reply, limit.ttl)
    }
  }, async (request, reply) => {
    const { username, password } = request.body ?? {}
    const wellFormed = typeof username === 'string' && typeof password === 'string' && username.length <= 64 && password.length <= 1024
    if (!wellFormed) return reply.code(401).send({ detail: 'Invalid username or password.' })
    const limit = await loginsPerUser(request)
    if (!limit.isAllowed && limit.isExceeded) return tooMany(reply, limit.ttl)
    const user = await store.login(username, password)
    if (user === null) return reply.code(401).send({ detail: 'Invalid username or password.' })
    // A new session id at login: an id planted before it (session fixation) would otherwise become the
    // user's. regenerate() also drops the old session from the store.
    await request.session.regenerate()
    request.session.set('userId', user.id)
    const token = await reply.jwtSign({ sub: user.id })
    reply.setCookie('token', token, { path: '/', httpOnly: true, sameSite: 'lax' })
    return { id: user.id, username: user.username, token }
  })

  // Logging out ends the session (gone from the store, its cookie cleared) and closes every socket the user
  // holds, in every process.
  app.post('/logout', { permissions: [IsAuthenticated] }, async (request, reply) => {
    const user = request.user!
    await request.session.destroy()
    reply.clearCookie('sessionId', { path: '/' })
    reply.clearCookie('token', { path: '/' })
    await app.chanx.disconnectUser(user, 4401, 'Logged out')
    return { detail: 'Logged out.' }
  })

  // A fresh JWT of the logged-in user, for a client that authenticates its socket with a token rather than
  // its cookies: the page in token mode (/?auth=token) fetches one for each socket and for each in-band
  // refresh. POST, so the cross-site rules above apply: another site cannot make the browser fetch one.
  app.post('/token', { permissions: [IsAuthenticated] }, async (request, reply) => {
    return { token: await reply.jwtSign({ sub: request.user!.id }), expiresIn: TOKEN_TTL_S }
  })

  app.get('/me', { permissions: [IsAuthenticated] }, async (request) => ({
    id: request.user!.id,
    username: request.user!.username,
    rooms: store.roomsOf(request.user!.id).map((room) => room.slug)
  }))

  // The REST API and the socket share one set of rules.
  app.get('/api/rooms/:roomId', { permissions: [IsAuthenticated, IsRoomMember], objectLoader: loadRoom }, async (request) => {
    const room = request.obj!
    return { slug: room.slug, name: room.name, messages: store.lastMessages(room.id, 20).map(wire) }
  })

  // Posting over REST reaches the room's sockets too.
  app.post<{ Params: { roomId: string }, Body: { text?: unknown } }>('/api/rooms/:roomId/messages', {
    permissions: [IsAuthenticated, IsRoomMember],
    objectLoader: loadRoom
  }, async (request, reply) => {
    const text = request.body?.text
    if (typeof text !== 'string' || text.trim() === '' || text.length > 2000) {
      return reply.code(400).send({ detail: 'text must be 1 to 2000 characters.' })
    }
    const saved = store.addMessage(request.obj!.id, request.user!.id, text.trim())
    await app.chanx.broadcast(`room:${request.obj!.id}`, { action: 'chat', payload: wire(saved) })
    return reply.code(201).send(wire(saved))
  })

  app.route(defineSocketRoute({
    url: '/ws/rooms/:roomId',
    // A token in the query string first: a client that sends one chose it over the cookies its browser
    // sends anyway (the page in token mode), so the socket's credential is that JWT, which expires, and is
    // refreshed in-band with the `authenticate` action. Then the session, then the JWT cookie or Bearer header.
    // No challenge on the first, as the session has none: a refused handshake stays a 403 (4403), as when the
    // session came first (the first authenticator's challenge decides 401 or 403); an expiry is still 4401.
    authentication: [
      jwtAuthentication({ query: 'token', cookie: false, header: false, challenge: false, loadUser: loadTokenUser }),
      sessionAuthentication({ key: 'userId', loadUser: (id) => store.userById(Number(id)) }),
      jwtAuthentication({ cookie: 'token', loadUser: loadTokenUser })
    ],
    permissions: [IsAuthenticated, IsRoomMember],
    objectLoader: loadRoom,
    groups: (ctx) => [`room:${ctx.obj.id}`],
    messages: {
      chat: Type.Object({ text: Type.String({ minLength: 1, maxLength: 2000 }) }),
      history: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 100 }) })
    },
    outgoing: {
      chat: WireMessage,
      history: Type.Object({ messages: Type.Array(WireMessage) })
    },
    handlers: {
      chat: async (message, ctx) => {
        const saved = store.addMessage(ctx.obj.id, ctx.user!.id, message.payload.text)
        await ctx.broadcast({ action: 'chat', payload: wire(saved) }, { excludeSelf: false })
      },
      history: (message, ctx) => ({
        action: 'history',
        payload: { messages: store.lastMessages(ctx.obj.id, message.payload.limit).map(wire) }
      })
    }
  }))

  return app
}

if (require.main === module) {
  const host = process.env.HOST ?? '127.0.0.1'
  const port = Number(process.env.PORT ?? 3000)
  buildApp().then(async (app) => {
    await app.listen({ host, port })
    app.log.info(`Open http://${host}:${port}/ and log in as alice, bob or carol (password: the name).`)
  }).catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
