/**
 * Server processes for bench/capacity.ts that bench/server.ts has no variant for. `CAPACITY_VARIANT`:
 *
 *   storm      the JWT handshake app (token in `?token=`, as the fastify-chanx client sends it), on
 *              `CAPACITY_PORT` (0: any); `<- { cmd: 'drop' }` closes every socket with 1012 (Service Restart),
 *              as an instance going away in a deploy does, while the listener stays up.
 *   fanout     an app on the plugin's `redis` option; every socket of /feed joins group 'g'.
 *   publisher  no sockets: a ChannelHub on the same Redis that broadcasts to 'g' at `<- { cmd: 'broadcast', rate }`,
 *              so every delivery crosses Redis to the app processes, as a broadcast made by one instance does.
 *
 * IPC as bench/server.ts: `-> { type: 'ready', port }`, `<- { cmd: 'cpu' } -> { type: 'cpu', user, system }`,
 * `<- { cmd: 'exit' }`. Logging, perMessageDeflate, rate limits and heartbeats are off.
 */
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { ChannelHub, createRedisLayer, defineSocketRoute, jwtAuthentication, IsAuthenticated } from '../plugin'
import { SECRET, broadcastAtRate } from './common'

const CHANX_BENCH = { rateLimit: false as const, heartbeatInterval: 0 }
const Echo = Type.Object({ text: Type.String({ maxLength: 8192 }), n: Type.Integer() })

async function stormApp (): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket, { options: { perMessageDeflate: false } })
  await app.register(chanx, { ...CHANX_BENCH, authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated] })
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { echo: Echo },
    handlers: { echo: (message) => ({ action: 'echo', payload: message.payload }) }
  }))
  return app
}

async function fanoutApp (redis: string): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(websocket, { options: { perMessageDeflate: false } })
  await app.register(chanx, { ...CHANX_BENCH, sendAuthenticationMessage: false, redis })
  app.route(defineSocketRoute({
    url: '/feed',
    groups: () => ['g'],
    messages: { echo: Echo },
    handlers: { echo: (message) => ({ action: 'echo', payload: message.payload }) }
  }))
  return app
}

async function main (): Promise<void> {
  const variant = process.env.CAPACITY_VARIANT
  let app: FastifyInstance | null = null
  let hub: ChannelHub | null = null
  if (variant === 'storm') app = await stormApp()
  else if (variant === 'fanout') app = await fanoutApp(process.env.CAPACITY_REDIS_URL!)
  else if (variant === 'publisher') hub = new ChannelHub({ layer: await createRedisLayer({ url: process.env.CAPACITY_REDIS_URL! }) })
  else throw new Error(`unknown CAPACITY_VARIANT ${variant}`)
  let port = 0
  if (app !== null) {
    await app.listen({ host: '127.0.0.1', port: Number(process.env.CAPACITY_PORT ?? 0), backlog: Number(process.env.CAPACITY_BACKLOG ?? 511) })
    port = (app.server.address() as AddressInfo).port
  }
  process.on('message', (msg: { cmd: string, rate?: number }) => {
    if (msg.cmd === 'cpu') {
      const { user, system } = process.cpuUsage()
      process.send!({ type: 'cpu', user, system })
    } else if (msg.cmd === 'drop') {
      const clients = app!.websocketServer.clients
      const count = clients.size
      for (const socket of clients) socket.close(1012, 'Service Restart')
      process.send!({ type: 'dropped', count })
    } else if (msg.cmd === 'count') {
      process.send!({ type: 'count', count: app!.websocketServer.clients.size })
    } else if (msg.cmd === 'broadcast') {
      broadcastAtRate(msg.rate!, (message) => { hub!.broadcast('g', message).catch(() => {}) })
    } else if (msg.cmd === 'exit') {
      process.exit(0)
    }
  })
  process.send!({ type: 'ready', port })
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
