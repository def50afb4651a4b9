// N worker processes behind one port (Node's cluster module) sharing groups, users and presence through
// one Redis. Each worker is a whole fastify-chanx app; the primary only forks them and restarts one that
// dies. A socket lands on any worker, and a broadcast made on any worker reaches the room's sockets on all.
//
//   REDIS_URL=redis://127.0.0.1:6379 WORKERS=4 PORT=3000 node --import tsx example/cluster.ts
//   REDIS_CLUSTER=127.0.0.1:7000,127.0.0.1:7001 …   (a Redis Cluster instead: sharded pub/sub)
//
// Try it: GET /token?user=alice, open ws://127.0.0.1:3000/ws/rooms/lobby?token=…, then
// POST /rooms/lobby/broadcast {"text":"hi"}, GET /rooms/lobby/presence, POST /users/alice/logout.
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import chanx, { IsAuthenticated, jwtAuthentication, type RedisOption } from 'fastify-chanx'

const JWT_SECRET = process.env.JWT_SECRET ?? 'example-jwt-secret-at-least-32-characters-long'

/** One Redis (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER=host:port,host:port). */
function redisOption (): RedisOption {
  if (process.env.REDIS_CLUSTER) {
    return { cluster: process.env.REDIS_CLUSTER.split(',').map((node) => `redis://${node}`) }
  }
  return process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
}

async function worker (): Promise<void> {
  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
  await app.register(jwt, { secret: JWT_SECRET })
  await app.register(websocket)
  await app.register(chanx, {
    authentication: [jwtAuthentication({ query: 'token' })],
    permissions: [IsAuthenticated],
    redis: redisOption(),
    // Every process signs its envelopes: publishing on Redis is not enough to speak for the app.
    channelSecret: process.env.CHANX_SECRET ?? 'example-channel-secret-at-least-32-characters',
    presence: true
  })

  // Hands a token to anyone, for trying the sockets; your login route issues them.
  app.get<{ Querystring: { user?: string } }>('/token', async (request) =>
    ({ token: app.jwt.sign({ sub: request.query.user ?? 'alice' }, { expiresIn: '1h' }) }))

  app.get<{ Params: { room: string } }>('/ws/rooms/:room', {
    websocket: true,
    groups: (ctx) => [`room:${(ctx.params as { room: string }).room}`]
  }, (socket) => {
    // Which worker holds this socket, to see them spread.
    socket.send(JSON.stringify({ action: 'worker', payload: process.pid }))
  })

  app.post<{ Params: { room: string }, Body: object }>('/rooms/:room/broadcast', async (request) => {
    await app.chanx.broadcast(`room:${request.params.room}`, { action: 'message', payload: request.body })
    return { worker: process.pid }
  })
  app.get<{ Params: { room: string } }>('/rooms/:room/presence', async (request) =>
    await app.chanx.presence(`room:${request.params.room}`))
  app.get<{ Params: { room: string } }>('/rooms/:room/size', async (request) =>
    ({ size: await app.chanx.groupSize(`room:${request.params.room}`) }))
  app.post<{ Params: { user: string }, Body: object }>('/users/:user/message', async (request) => {
    await app.chanx.sendToUser(request.params.user, { action: 'notice', payload: request.body })
    return { ok: true }
  })
  app.post<{ Params: { user: string } }>('/users/:user/logout', async (request) => {
    await app.chanx.disconnectUser(request.params.user, 4401, 'Logged out')
    return { ok: true }
  })

  // Workers share the primary's listening socket; PORT=0 gives all of them the same free port.
  await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
  // The primary is gone (or asked us to stop): close sockets and Redis, then exit.
  process.on('disconnect', () => { void app.close().then(() => process.exit(0)) })
}

function primary (): void {
  const count = Number(process.env.WORKERS ?? availableParallelism())
  let stopping = false
  for (let i = 0; i < count; i++) cluster.fork()
  cluster.on('exit', (dead, code, signal) => {
    if (stopping) return
    console.error(`worker ${dead.process.pid} died (${signal ?? code}); starting another`)
    cluster.fork()
  })
  const stop = (): void => {
    stopping = true
    for (const w of Object.values(cluster.workers ?? {})) w?.disconnect()
    setTimeout(() => process.exit(0), 3000).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

if (cluster.isPrimary) primary()
else worker().catch((err) => { console.error(err); process.exit(1) })
