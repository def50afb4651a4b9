import Fastify, { type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { IsAuthenticated, type Permission, defineSocketRoute, jwtAuthentication, type FastifyChanxOptions } from '../../plugin'
import { closeApp } from '../../plugin/testing'

export const SECRET = 'a-client-test-secret-of-32-chars!!'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const IsNotSecret: Permission<{ id: string }> = { hasObjectPermission: (_request, room) => room.id !== 'secret' }

/** The route the client tests talk to; its type is what `createClient<typeof clientRoute>` reads. */
export const clientRoute = defineSocketRoute({
  url: '/ws/rooms/:roomId',
  concurrency: 3,
  objectLoader: async (request) => {
    const roomId = request.params.roomId
    if (roomId === 'missing') return null
    if (roomId === 'broken') throw new Error('the room store is down')
    if (roomId === 'slow') await sleep(300)
    return { id: roomId }
  },
  permissions: [IsAuthenticated, IsNotSecret],
  messages: {
    echo: Type.Object({ text: Type.String(), delay: Type.Optional(Type.Integer()) }),
    closeMe: Type.Object({ code: Type.Integer(), reason: Type.String() }),
    drop: Type.Null(),
    whoami: Type.Null(),
    fail: Type.Null()
  },
  outgoing: {
    echo: Type.Object({ text: Type.String() }),
    me: Type.Object({ sub: Type.String() })
  },
  handlers: {
    echo: async (message) => {
      if (message.payload.delay !== undefined) await sleep(message.payload.delay)
      return { action: 'echo', payload: { text: message.payload.text } }
    },
    closeMe: (message, ctx) => { ctx.close(message.payload.code, message.payload.reason) },
    drop: (_message, ctx) => { ctx.socket.terminate() },
    whoami: (_message, ctx) => ({ action: 'me', payload: { sub: (ctx.user as { sub: string }).sub } }),
    fail: () => { throw new Error('boom') }
  }
})

export interface ClientServer {
  app: FastifyInstance
  port: number
  url (room?: string): string
  sign (sub: string, expiresInSeconds?: number): string
  close (): Promise<void>
}

/** A real server on 127.0.0.1 (`port` 0: any free port; pass the old port to restart one). */
export async function startServer (port = 0, options: FastifyChanxOptions = {}): Promise<ClientServer> {
  const app = Fastify()
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token', protocol: 'bearer' })], ...options })
  app.route(clientRoute)
  await app.listen({ host: '127.0.0.1', port })
  const address = app.server.address()
  const bound = typeof address === 'object' && address !== null ? address.port : port
  return {
    app,
    port: bound,
    url: (room = 'lobby') => `ws://127.0.0.1:${bound}/ws/rooms/${room}`,
    sign: (sub, expiresInSeconds) => app.jwt.sign(expiresInSeconds === undefined ? { sub } : { sub, exp: Math.floor(Date.now() / 1000) + expiresInSeconds }),
    close: () => closeApp(app)
  }
}
