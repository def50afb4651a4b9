import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import chanx, { IsAuthenticated, jwtAuthentication } from 'fastify-chanx'

async function main () {
  const app = Fastify({ logger: true })
  await app.register(jwt, { secret: process.env.JWT_SECRET ?? 'change-me-to-a-secret-of-32-chars-or-more' })
  await app.register(websocket)
  await app.register(chanx, {
    // Reads `Authorization: Bearer <jwt>` and, for this demo, `?token=<jwt>`.
    authentication: [jwtAuthentication({ query: 'token' })],
    permissions: [IsAuthenticated]
  })

  // Your login route issues tokens; this one hands them out to anyone, for trying the socket.
  app.get('/token', async () => ({ token: app.jwt.sign({ sub: 'alice' }, { expiresIn: '1h' }) }))

  // A plain @fastify/websocket handler: it only runs for authenticated, permitted clients.
  app.get('/ws/echo', { websocket: true }, (socket, request) => {
    socket.on('message', (data) => socket.send(JSON.stringify({ user: request.user, echo: data.toString() })))
  })

  await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
}

main().catch((err) => { console.error(err); process.exit(1) })
