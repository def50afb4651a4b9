// The smoke suite's app, built the way the README shows: @fastify/jwt, @fastify/websocket, then fastify-chanx,
// then the routes. `redis` carries groups across processes (redis.test.ts) or over a Cluster (cluster.test.ts).
import Fastify, { type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import chanx, { IsAuthenticated, jwtAuthentication, type RedisOption } from 'fastify-chanx'
import { chatRoute, refusingRoute } from './routes.js'

export interface User { name: string }

declare module 'fastify-chanx' {
  interface ChanxTypes { user: User | null }
}
declare module '@fastify/jwt' {
  interface FastifyJWT { payload: { name: string }, user: User | null }
}

export const SECRET = 'fresh-install-smoke-secret-of-32-characters'

export async function buildApp (redis?: RedisOption): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(chanx, {
    authentication: [jwtAuthentication({ query: 'token', protocol: 'bearer', loadUser: (payload) => ({ name: payload.name }) })],
    permissions: [IsAuthenticated],
    // Typed from ChanxTypes: `user.name` compiles.
    userKey: (user) => user === null ? null : user.name,
    ...(redis === undefined ? {} : { redis })
  })
  app.route(chatRoute)
  app.route(refusingRoute)
  return app
}

export function tokenFor (app: FastifyInstance, name: string): string {
  return app.jwt.sign({ name })
}
