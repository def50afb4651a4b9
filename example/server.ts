// A minimal app on fastify-chanx: the same authenticators and permissions guard a REST route and a
// WebSocket route. `npm run example`, then follow the printed instructions.
import Fastify, { type FastifyRequest } from 'fastify'
import cookie from '@fastify/cookie'
import session from '@fastify/session'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import chanx, { IsAuthenticated, jwtAuthentication, sessionAuthentication, type Permission } from '../plugin'

interface User { id: number, username: string, password: string }
interface Room { id: string, name: string, members: number[] }

declare module '../plugin' {
  interface ChanxTypes { user: User | null, obj: Room | null }
}
declare module '@fastify/jwt' {
  interface FastifyJWT { user: User | null }
}
declare module 'fastify' {
  interface Session { userId?: number }
}

// Embedded defaults so the example runs with nothing to set up; a real app reads these from its secrets.
const SESSION_SECRET = process.env.SESSION_SECRET ?? 'example-session-secret-at-least-32-characters'
const JWT_SECRET = process.env.JWT_SECRET ?? 'example-jwt-secret-at-least-32-characters-long'
const HOST = process.env.HOST ?? '127.0.0.1'
const PORT = Number(process.env.PORT ?? 3000)

const users = new Map<number, User>([
  [1, { id: 1, username: 'alice', password: 'alice' }],
  [2, { id: 2, username: 'bob', password: 'bob' }],
  [3, { id: 3, username: 'carol', password: 'carol' }]
])
const rooms = new Map<string, Room>([
  ['lobby', { id: 'lobby', name: 'Lobby', members: [1, 2, 3] }],
  ['secret', { id: 'secret', name: 'Alice and Bob', members: [1, 2] }]
])

const IsRoomMember: Permission = {
  message: 'You are not a member of this room.',
  hasObjectPermission: (request, room) => request.user !== null && room !== null && room.members.includes(request.user.id)
}

const loadRoom = (request: FastifyRequest<{ Params: { roomId: string } }>) => rooms.get(request.params.roomId) ?? null

export async function buildApp () {
  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
  await app.register(cookie)
  await app.register(session, { secret: SESSION_SECRET, cookie: { secure: false, httpOnly: true, sameSite: 'lax' } })
  await app.register(jwt, { secret: JWT_SECRET, cookie: { cookieName: 'token', signed: false }, sign: { expiresIn: '1h' } })
  await app.register(websocket)
  await app.register(chanx, {
    // Session first: a browser that logged in carries the session cookie. The JWT cookie, the Bearer
    // header and ?token= serve other clients.
    authentication: [
      sessionAuthentication({ key: 'userId', loadUser: (id) => users.get(Number(id)) ?? null }),
      jwtAuthentication({ cookie: 'token', query: 'token', loadUser: (payload) => users.get((payload as { sub: number }).sub) ?? null })
    ],
    permissions: [IsAuthenticated]
  })

  app.post<{ Body: { username?: string, password?: string } }>('/login', async (request, reply) => {
    const { username, password } = request.body ?? {}
    const user = [...users.values()].find((candidate) => candidate.username === username && candidate.password === password)
    if (user === undefined) return reply.code(401).send({ detail: 'Invalid username or password.' })
    request.session.set('userId', user.id)
    const token = await reply.jwtSign({ sub: user.id })
    reply.setCookie('token', token, { path: '/', httpOnly: true, sameSite: 'lax' })
    return { id: user.id, username: user.username, token }
  })

  app.post('/logout', async (request, reply) => {
    await request.session.destroy()
    reply.clearCookie('token', { path: '/' })
    return { detail: 'Logged out.' }
  })

  // The REST API and the socket share one set of rules.
  app.get('/api/rooms/:roomId', { permissions: [IsAuthenticated, IsRoomMember], objectLoader: loadRoom }, async (request) => {
    return { id: request.obj?.id, name: request.obj?.name, you: request.user?.username }
  })

  app.get('/ws/rooms/:roomId', { websocket: true, permissions: [IsAuthenticated, IsRoomMember], objectLoader: loadRoom }, (socket, request) => {
    const who = request.user?.username ?? 'anonymous'
    socket.send(JSON.stringify({ action: 'welcome', payload: { room: request.obj?.name, user: who } }))
    socket.on('message', (data) => {
      socket.send(JSON.stringify({ action: 'echo', payload: { from: who, text: data.toString() } }))
    })
  })

  return app
}

if (require.main === module) {
  buildApp().then(async (app) => {
    await app.listen({ host: HOST, port: PORT })
    app.log.info(`Log in:   curl -c jar -H 'content-type: application/json' -d '{"username":"alice","password":"alice"}' http://${HOST}:${PORT}/login`)
    app.log.info(`REST:     curl -b jar http://${HOST}:${PORT}/api/rooms/secret`)
    app.log.info(`Socket:   ws://${HOST}:${PORT}/ws/rooms/secret (with the session cookie, ?token=..., or Authorization: Bearer)`)
  }).catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
