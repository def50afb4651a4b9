/**
 * One benchmark server variant, in its own process (bench/run.ts spawns it pinned to core 0 with
 * `taskset -c 0`). The variant is `BENCH_VARIANT`; the process talks to the harness over the IPC channel:
 *
 *   -> { type: 'ready', port }                     once listening on 127.0.0.1
 *   <- { cmd: 'cpu' }       -> { type: 'cpu', user, system, at }   process.cpuUsage() (µs), and when (ms)
 *   <- { cmd: 'mem' }       -> { type: 'mem', rss, heapUsed, external, alive, sampled }  after forced GC
 *   <- { cmd: 'broadcast', rate }  starts broadcasting to group 'g' at `rate` per second (scheduled times)
 *   <- { cmd: 'exit' }
 *
 * Logging is off and perMessageDeflate is off everywhere; every plugin server sets `rateLimit: false` and
 * `heartbeatInterval: 0`, so the figures are the pipeline's own cost. The Socket.IO servers accept the
 * websocket transport only and ping every 10 minutes (never inside a run); the uWebSockets.js servers
 * disable its idle timeout and automatic pings.
 */
import diagnostics from 'node:diagnostics_channel'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { writeHeapSnapshot } from 'node:v8'
import { Redis } from 'ioredis'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import cookie from '@fastify/cookie'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { createVerifier } from 'fast-jwt'
import type { Server as SocketIoServer } from 'socket.io'
import { WebSocketServer, type WebSocket } from 'ws'
import type * as Plugin from '../plugin'
import type { Permission } from '../plugin'
import { COOKIE, SECRET, SOCKET_IO_OPTIONS, broadcastAtRate, loadUws, type Uws } from './common'

/**
 * The plugin as users install it: the build (`dist/`, compiled by tsc, which bench/run.ts makes first), not
 * the sources through tsx, whose keepNames wrapper adds a call to every closure the plugin creates per
 * connection. BENCH_PLUGIN=source measures the sources.
 */
const plugin = (process.env.BENCH_PLUGIN === 'source' ? require('../plugin') : require('../dist/plugin')) as typeof Plugin
const { default: chanx, ChannelHub, createRedisLayer, defineSocketRoute, jwtAuthentication, IsAuthenticated } = plugin

interface Room { slug: string, members: Set<string> }
const ROOMS = new Map<string, Room>([['lobby', { slug: 'lobby', members: new Set(['alice', 'bob']) }]])

const AUTH_OK = '{"action":"authentication","payload":{"status_code":200,"status_text":"OK","data":{"detail":"OK"}}}'
const refusal = (status: number, text: string, detail: string): string =>
  `{"action":"authentication","payload":{"status_code":${status},"status_text":"${text}","data":{"detail":${JSON.stringify(detail)}}}}`
const REFUSED_401 = refusal(401, 'Unauthorized', 'Invalid token')
const REFUSED_403 = refusal(403, 'Forbidden', 'You are not a member of this room.')
const REFUSED_404 = refusal(404, 'Not Found', 'Not found.')

const Echo = Type.Object({ text: Type.String({ maxLength: 8192 }), n: Type.Integer() })

const IsMember: Permission<unknown> = {
  message: 'You are not a member of this room.',
  hasPermission: () => true,
  hasObjectPermission: (request, obj) => (obj as Room).members.has((request.user as { sub: string }).sub)
}

const CHANX_BENCH = { rateLimit: false as const, heartbeatInterval: 0 }

/** Weak references to every SAMPLE_EVERY-th upgrade request: how many survive a forced GC. */
const SAMPLE_EVERY = 50
const sampledRequests: WeakRef<object>[] = []
const sampledRaw: WeakRef<object>[] = []
let seen = 0
function sample (request: FastifyRequest | IncomingMessage): void {
  if (seen++ % SAMPLE_EVERY !== 0) return
  if ('raw' in request) {
    sampledRequests.push(new WeakRef(request))
    sampledRaw.push(new WeakRef(request.raw))
  } else sampledRaw.push(new WeakRef(request))
}
const alive = (refs: WeakRef<object>[]): number => refs.filter((ref) => ref.deref() !== undefined).length

async function fastifyBase (withJwt: boolean): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  app.addHook('onRequest', async (request) => { sample(request) })
  if (withJwt) {
    await app.register(cookie)
    await app.register(jwt, { secret: SECRET, cookie: { cookieName: COOKIE, signed: false } })
  }
  await app.register(websocket, { options: { perMessageDeflate: false } })
  return app
}

// ---------------------------------------------------------------------------------------------------------
// Handshake (and idle-memory) servers: JWT cookie, IsAuthenticated, a room loaded from memory, a member check.

async function handshakePlugin (): Promise<FastifyInstance> {
  const app = await fastifyBase(true)
  await app.register(chanx, { ...CHANX_BENCH, authentication: [jwtAuthentication()], permissions: [IsAuthenticated] })
  app.route(defineSocketRoute({
    url: '/ws/rooms/:roomId',
    objectLoader: (request) => ROOMS.get(request.params.roomId) ?? null,
    permissions: [IsAuthenticated, IsMember],
    messages: { echo: Echo },
    handlers: { echo: (message) => ({ action: 'echo', payload: message.payload }) }
  }))
  return app
}

/** The same check written by hand in a @fastify/websocket handler. */
async function handshakeFastifyWs (): Promise<FastifyInstance> {
  const app = await fastifyBase(true)
  app.get<{ Params: { roomId: string } }>('/ws/rooms/:roomId', { websocket: true }, async (socket, request) => {
    let user: { sub: string }
    try {
      user = await request.jwtVerify<{ sub: string }>({ onlyCookie: true })
    } catch {
      socket.send(REFUSED_401)
      socket.close(4401, 'Unauthorized')
      return
    }
    const room = ROOMS.get(request.params.roomId)
    if (room === undefined) { socket.send(REFUSED_404); socket.close(4404, 'Not Found'); return }
    if (!room.members.has(user.sub)) { socket.send(REFUSED_403); socket.close(4403, 'Forbidden'); return }
    socket.send(AUTH_OK)
  })
  return app
}

/** Bare @fastify/websocket: a route that keeps the socket and checks nothing (the memory floor). */
async function bareFastifyWs (): Promise<FastifyInstance> {
  const app = await fastifyBase(false)
  app.get('/ws/rooms/:roomId', { websocket: true }, (socket) => { socket.send(AUTH_OK) })
  return app
}

/** Raw `ws` on node:http with the same check (cookie parse, fast-jwt verify, room, membership). */
/** The named cookie's value, by hand (what a raw `ws` app would write). */
function cookieValue (header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim())
  }
  return undefined
}

function handshakeRawWs (): Promise<number> {
  const verify = createVerifier({ key: SECRET })
  const server = createServer()
  const wss = new WebSocketServer({ server, perMessageDeflate: false })
  const route = /^\/ws\/rooms\/([^/?]+)/
  wss.on('connection', (socket, request) => {
    let user: { sub: string }
    try {
      const token = cookieValue(request.headers.cookie, COOKIE)
      if (token === undefined) throw new Error('no token')
      user = verify(token) as { sub: string }
    } catch {
      socket.send(REFUSED_401)
      socket.close(4401, 'Unauthorized')
      return
    }
    const room = ROOMS.get(route.exec(request.url ?? '')?.[1] ?? '')
    if (room === undefined) { socket.send(REFUSED_404); socket.close(4404, 'Not Found'); return }
    if (!room.members.has(user.sub)) { socket.send(REFUSED_403); socket.close(4403, 'Forbidden'); return }
    socket.send(AUTH_OK)
  })
  return listenRaw(server)
}

// ---------------------------------------------------------------------------------------------------------
// Message round trip: validated, routed echo.

async function messagesPlugin (): Promise<FastifyInstance> {
  const app = await fastifyBase(false)
  await app.register(chanx, { ...CHANX_BENCH, sendAuthenticationMessage: false })
  app.route(defineSocketRoute({
    url: '/echo',
    messages: { echo: Echo },
    handlers: { echo: (message) => ({ action: 'echo', payload: message.payload }) }
  }))
  return app
}

/**
 * The plugin's route with a subscriber on every diagnostics channel a round trip publishes on (the frame
 * channel and the handler's TracingChannel), each counting what it hears: what observability costs when on.
 */
async function messagesPluginObserved (): Promise<FastifyInstance> {
  let heard = 0
  const count = (): void => { heard++ }
  diagnostics.subscribe('fastify-chanx.frame', count)
  diagnostics.tracingChannel('fastify-chanx.handler').subscribe({ start: count, end: count, asyncStart: count, asyncEnd: count, error: count })
  process.on('exit', () => { if (heard === 0) console.error('messages-plugin-observed: the subscribers heard nothing') })
  return await messagesPlugin()
}

/** The same pipeline by hand: parse, route by action, compiled TypeBox check, Chanx-shaped errors. */
async function messagesFastifyWs (): Promise<FastifyInstance> {
  const app = await fastifyBase(false)
  const INVALID_JSON = '{"action":"error","payload":{"detail":"Invalid JSON"}}'
  type Handler = (payload: unknown) => string
  const check = TypeCompiler.Compile(Echo)
  const actions = new Map<string, { check: typeof check, handle: Handler }>([
    ['echo', { check, handle: (payload) => JSON.stringify({ action: 'echo', payload }) }]
  ])
  app.get('/echo', { websocket: true }, (socket) => {
    socket.on('message', (data, isBinary) => {
      if (isBinary) { socket.send('{"action":"error","payload":{"detail":"Binary frames are not accepted"}}'); return }
      let message: { action?: unknown, payload?: unknown }
      try {
        message = JSON.parse((data as Buffer).toString())
      } catch {
        socket.send(INVALID_JSON)
        return
      }
      if (message === null || typeof message !== 'object') { socket.send(INVALID_JSON); return }
      const action = typeof message.action === 'string' ? actions.get(message.action) : undefined
      if (action === undefined) {
        socket.send(JSON.stringify({ action: 'error', payload: [{ type: 'union_tag_invalid', loc: [], msg: 'unknown action' }] }))
        return
      }
      if (!action.check.Check(message.payload)) {
        const errors = [...action.check.Errors(message.payload)].slice(0, 20)
          .map((e) => ({ type: 'value_error', loc: [message.action, ...e.path.split('/').slice(1)], msg: e.message }))
        socket.send(JSON.stringify({ action: 'error', payload: errors }))
        return
      }
      socket.send(action.handle(message.payload))
    })
  })
  return app
}

function messagesRawWs (): Promise<number> {
  const server = createServer()
  const wss = new WebSocketServer({ server, perMessageDeflate: false })
  wss.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => { socket.send(data, { binary: isBinary }) })
  })
  return listenRaw(server)
}

// ---------------------------------------------------------------------------------------------------------
// Broadcast: every socket joins group 'g'; the server broadcasts { action: 'tick', payload: { t, s } } at a
// fixed rate, t being the scheduled send time (epoch ms, sub-millisecond), so clients time the delivery.

let broadcastOnce: ((message: { action: string, payload: { t: number, s: number } }) => void) | null = null

async function broadcastPlugin (redis: string | undefined): Promise<FastifyInstance> {
  const app = await fastifyBase(false)
  await app.register(chanx, { ...CHANX_BENCH, sendAuthenticationMessage: false, ...(redis !== undefined ? { redis } : {}) })
  app.route(defineSocketRoute({
    url: '/feed',
    groups: () => ['g'],
    messages: { echo: Echo },
    handlers: { echo: (message) => ({ action: 'echo', payload: message.payload }) }
  }))
  broadcastOnce = (message) => { app.chanx.broadcast('g', message).catch(() => {}) }
  if (redis !== undefined) {
    // app.chanx.broadcast delivers to this process's members directly and publishes for the others: to make
    // every delivery cross Redis (publish -> redis-server -> subscriber -> local fan-out), as between two
    // instances, the broadcast comes from a second hub in this process that has no members. Both ends'
    // CPU is this process's.
    const sender = new ChannelHub({ layer: await createRedisLayer({ url: redis }) })
    app.addHook('onClose', async () => { await sender.close() })
    broadcastOnce = (message) => { sender.broadcast('g', message).catch(() => {}) }
  }
  return app
}

/**
 * The floor under broadcast-plugin-redis (BENCH_REDIS_FLOOR=1): the in-process plugin, but each broadcast
 * first makes the same trip through Redis on plain ioredis connections (a PUBLISH, then its message on a
 * subscriber in this process), with no channel layer, envelope or hub code on the way. What the Redis
 * variant costs above this is fastify-chanx's; what this costs above the in-process plugin is the trip.
 */
async function broadcastRedisFloor (url: string): Promise<FastifyInstance> {
  const app = await broadcastPlugin(undefined)
  const publisher = new Redis(url)
  const subscriber = new Redis(url)
  await subscriber.subscribe('bench-floor')
  const pending: { action: string, payload: { t: number, s: number } }[] = []
  subscriber.on('message', () => {
    const message = pending.shift()
    if (message !== undefined) app.chanx.broadcast('g', message).catch(() => {})
  })
  app.addHook('onClose', async () => { publisher.disconnect(); subscriber.disconnect() })
  broadcastOnce = (message) => {
    pending.push(message)
    publisher.publish('bench-floor', JSON.stringify(message)).catch(() => {})
  }
  return app
}

/** The naive loop: serialize once, then send(string) on each raw socket. */
function broadcastRawWs (): Promise<number> {
  const server = createServer()
  const wss = new WebSocketServer({ server, perMessageDeflate: false })
  const members = new Set<WebSocket>()
  wss.on('connection', (socket) => {
    members.add(socket)
    socket.on('close', () => members.delete(socket))
  })
  broadcastOnce = (message) => {
    const text = JSON.stringify(message)
    for (const socket of members) socket.send(text)
  }
  return listenRaw(server)
}

// ---------------------------------------------------------------------------------------------------------
// Socket.IO 4 baselines: a plain node:http server, websocket transport only. The client sends the CONNECT
// packet `40{"room":"lobby"}` after engine.io's OPEN; the `io.use` middleware does the handshake's checks
// (the same cookie and token, fast-jwt as @fastify/jwt uses, the room, the membership), and Socket.IO answers
// `40{"sid":…}` (accepted) or `44{"message":…}` (refused) on its own.

interface SocketIoRefusal extends Error { data?: unknown }
function socketIoRefusal (status: number, text: string, detail: string): SocketIoRefusal {
  const err: SocketIoRefusal = new Error(text)
  err.data = { status_code: status, status_text: text, data: { detail } }
  return err
}

/** socket.io is loaded only by its own variants, so the other servers' processes are as before. */
async function socketIoServer (): Promise<{ io: SocketIoServer, listen: () => Promise<number> }> {
  const { Server } = await import('socket.io')
  const server = createServer()
  const io = new Server(server, SOCKET_IO_OPTIONS)
  return { io, listen: () => listenRaw(server) }
}

async function handshakeSocketIo (): Promise<number> {
  const verify = createVerifier({ key: SECRET })
  const { io, listen } = await socketIoServer()
  io.use((socket, next) => {
    sample(socket.request)
    let user: { sub: string }
    try {
      const token = cookieValue(socket.request.headers.cookie, COOKIE)
      if (token === undefined) throw new Error('no token')
      user = verify(token) as { sub: string }
    } catch {
      next(socketIoRefusal(401, 'Unauthorized', 'Invalid token'))
      return
    }
    const auth = socket.handshake.auth as { room?: unknown }
    const room = typeof auth.room === 'string' ? ROOMS.get(auth.room) : undefined
    if (room === undefined) { next(socketIoRefusal(404, 'Not Found', 'Not found.')); return }
    if (!room.members.has(user.sub)) { next(socketIoRefusal(403, 'Forbidden', 'You are not a member of this room.')); return }
    socket.data.user = user
    socket.data.room = room
    next()
  })
  return listen()
}

/** Event + acknowledgement echo with the same compiled TypeBox check and Chanx-shaped error list. */
async function messagesSocketIo (): Promise<number> {
  const { io, listen } = await socketIoServer()
  const check = TypeCompiler.Compile(Echo)
  io.on('connection', (socket) => {
    socket.on('echo', (payload: unknown, ack: unknown) => {
      if (typeof ack !== 'function') return
      if (!check.Check(payload)) {
        const errors = [...check.Errors(payload)].slice(0, 20)
          .map((e) => ({ type: 'value_error', loc: ['echo', ...e.path.split('/').slice(1)], msg: e.message }))
        ack({ error: errors })
        return
      }
      ack(payload)
    })
  })
  return listen()
}

/** Every socket joins room 'g'; `io.to('g').emit` (Socket.IO encodes and frames the packet once per broadcast). */
async function broadcastSocketIo (): Promise<number> {
  const { io, listen } = await socketIoServer()
  io.on('connection', (socket) => { void socket.join('g') })
  broadcastOnce = (message) => { io.to('g').emit(message.action, message.payload) }
  return listen()
}

// ---------------------------------------------------------------------------------------------------------
// uWebSockets.js, the reported-only "limit": the same checks by hand in uWS's own server (no Node http).

function requireUws (): Uws {
  const loaded = loadUws()
  if (loaded.uws === undefined) throw new Error(loaded.skip)
  return loaded.uws
}

const UWS_BEHAVIOR = { idleTimeout: 0, sendPingsAutomatically: false, maxPayloadLength: 64 * 1024, maxBackpressure: 1024 * 1024 }

function listenUws (uws: Uws, app: ReturnType<Uws['App']>): Promise<number> {
  return new Promise((resolve, reject) => {
    app.listen('127.0.0.1', 0, (token) => {
      if (token === false) reject(new Error('uWS could not listen'))
      else resolve(uws.us_socket_local_port(token))
    })
  })
}

interface UwsHandshake { reply: string, close?: [number, string] }

/** Upgrade only after the checks; a refused client still gets the upgrade, the refusal and the close code. */
function handshakeUws (): Promise<number> {
  const uws = requireUws()
  const verify = createVerifier({ key: SECRET })
  const app = uws.App()
  app.ws<UwsHandshake>('/ws/rooms/:roomId', {
    ...UWS_BEHAVIOR,
    upgrade: (res, req, context) => {
      let data: UwsHandshake
      let user: { sub: string } | undefined
      try {
        const token = cookieValue(req.getHeader('cookie') || undefined, COOKIE)
        if (token === undefined) throw new Error('no token')
        user = verify(token) as { sub: string }
      } catch {
        user = undefined
      }
      const room = ROOMS.get(req.getParameter(0))
      if (user === undefined) data = { reply: REFUSED_401, close: [4401, 'Unauthorized'] }
      else if (room === undefined) data = { reply: REFUSED_404, close: [4404, 'Not Found'] }
      else if (!room.members.has(user.sub)) data = { reply: REFUSED_403, close: [4403, 'Forbidden'] }
      else data = { reply: AUTH_OK }
      res.upgrade(data, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context)
    },
    open: (ws) => {
      const data = ws.getUserData()
      ws.send(data.reply)
      if (data.close !== undefined) ws.end(data.close[0], data.close[1])
    }
  })
  return listenUws(uws, app)
}

/** The hand-written pipeline of messagesFastifyWs in uWS's message callback. */
function messagesUws (): Promise<number> {
  const uws = requireUws()
  const app = uws.App()
  const INVALID_JSON = '{"action":"error","payload":{"detail":"Invalid JSON"}}'
  const check = TypeCompiler.Compile(Echo)
  app.ws('/echo', {
    ...UWS_BEHAVIOR,
    message: (ws, data, isBinary) => {
      if (isBinary) { ws.send('{"action":"error","payload":{"detail":"Binary frames are not accepted"}}'); return }
      let message: { action?: unknown, payload?: unknown }
      try {
        message = JSON.parse(Buffer.from(data).toString())
      } catch {
        ws.send(INVALID_JSON)
        return
      }
      if (message === null || typeof message !== 'object') { ws.send(INVALID_JSON); return }
      if (message.action !== 'echo') {
        ws.send(JSON.stringify({ action: 'error', payload: [{ type: 'union_tag_invalid', loc: [], msg: 'unknown action' }] }))
        return
      }
      if (!check.Check(message.payload)) {
        const errors = [...check.Errors(message.payload)].slice(0, 20)
          .map((e) => ({ type: 'value_error', loc: [message.action, ...e.path.split('/').slice(1)], msg: e.message }))
        ws.send(JSON.stringify({ action: 'error', payload: errors }))
        return
      }
      ws.send(JSON.stringify({ action: 'echo', payload: message.payload }))
    }
  })
  return listenUws(uws, app)
}

/** uWS's native pub/sub: every socket subscribes to topic 'g'; a broadcast is one `app.publish`. */
function broadcastUws (): Promise<number> {
  const uws = requireUws()
  const app = uws.App()
  app.ws('/*', { ...UWS_BEHAVIOR, open: (ws) => { ws.subscribe('g') } })
  broadcastOnce = (message) => { app.publish('g', JSON.stringify(message)) }
  return listenUws(uws, app)
}

// ---------------------------------------------------------------------------------------------------------

function listenRaw (server: ReturnType<typeof createServer>): Promise<number> {
  server.on('request', (request) => { sample(request) })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))
}

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

async function start (variant: string): Promise<number> {
  switch (variant) {
    case 'handshake-plugin': return listen(await handshakePlugin())
    case 'handshake-fastify-ws': return listen(await handshakeFastifyWs())
    case 'handshake-ws': return handshakeRawWs()
    case 'bare-fastify-ws': return listen(await bareFastifyWs())
    case 'messages-plugin': return listen(await messagesPlugin())
    case 'messages-plugin-observed': return listen(await messagesPluginObserved())
    case 'messages-fastify-ws': return listen(await messagesFastifyWs())
    case 'messages-ws': return messagesRawWs()
    case 'broadcast-plugin': return listen(await broadcastPlugin(undefined))
    case 'broadcast-plugin-redis': return listen(await broadcastPlugin(process.env.BENCH_REDIS_URL))
    case 'broadcast-ws': return broadcastRawWs()
    case 'broadcast-plugin-redis-floor': return listen(await broadcastRedisFloor(process.env.BENCH_REDIS_URL!))
    case 'handshake-socketio': return handshakeSocketIo()
    case 'messages-socketio': return messagesSocketIo()
    case 'broadcast-socketio': return broadcastSocketIo()
    case 'handshake-uws': return handshakeUws()
    case 'messages-uws': return messagesUws()
    case 'broadcast-uws': return broadcastUws()
    default: throw new Error(`unknown BENCH_VARIANT ${variant}`)
  }
}

async function settle (): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    ;(globalThis as { gc?: () => void }).gc?.()
  }
}

async function main (): Promise<void> {
  const port = await start(process.env.BENCH_VARIANT ?? '')
  process.on('message', (msg: { cmd: string, rate?: number }) => {
    if (msg.cmd === 'cpu') {
      const { user, system } = process.cpuUsage()
      process.send!({ type: 'cpu', user, system, at: performance.now() })
    } else if (msg.cmd === 'mem') {
      settle().then(() => {
        const m = process.memoryUsage()
        process.send!({
          type: 'mem',
          rss: m.rss,
          heapUsed: m.heapUsed,
          external: m.external,
          arrayBuffers: m.arrayBuffers,
          sampled: sampledRaw.length,
          aliveRequests: alive(sampledRequests),
          aliveRaw: alive(sampledRaw)
        })
      }, (err: unknown) => { console.error(err) })
    } else if (msg.cmd === 'snapshot') {
      // A heap snapshot of the idle connections, for bench/heap-summary.ts.
      settle().then(() => {
        const file = writeHeapSnapshot(`bench/profiles/${process.env.BENCH_VARIANT}-${process.pid}.heapsnapshot`)
        process.send!({ type: 'snapshot', file })
      }, (err: unknown) => { console.error(err) })
    } else if (msg.cmd === 'broadcast') {
      broadcastAtRate(msg.rate!, broadcastOnce!)
    } else if (msg.cmd === 'exit') {
      process.exit(0)
    }
  })
  process.send!({ type: 'ready', port })
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
