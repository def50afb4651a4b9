import { createServer, connect as netConnect, type Server, type Socket } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { IsAuthenticated, defineSocketRoute, jwtAuthentication, type FastifyChanxOptions } from '../../plugin'
import { closeApp } from '../../plugin/testing'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { createClient, type ChanxClient, type Decision } from '../../plugin/client'

export const RECOVERY_SECRET = 'a-recovery-test-secret-of-32-chars!!'

/**
 * The app of the recovery tests: `/ws` joins the groups `access` grants the user (every group when the
 * user is not in it), so a test can revoke a permission while a client is away.
 */
export async function buildRecoveryApp (options: FastifyChanxOptions = {}, access = new Map<string, string[]>(),
  logLines?: string[]): Promise<FastifyInstance> {
  const app = logLines === undefined ? Fastify() : Fastify({ logger: { level: 'info', stream: { write: (line: string) => { logLines.push(line) } } } })
  await app.register(jwt, { secret: RECOVERY_SECRET })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated], history: true, ...options })
  app.route(defineSocketRoute({
    url: '/ws',
    groups: (ctx) => access.get((ctx.user as { sub: string }).sub) ?? ['feed', 'side'],
    messages: { say: Type.Object({ text: Type.String(), to: Type.Optional(Type.Array(Type.String())) }) },
    handlers: {
      say: (message, ctx) => ctx.broadcast({ action: 'said', payload: { text: message.payload.text } }, { groups: message.payload.to })
    }
  }))
  return app
}

export async function listen (t: { teardown (fn: () => unknown): void }, app: FastifyInstance): Promise<number> {
  t.teardown(() => closeApp(app))
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as { port: number }).port
}

/** A TCP proxy on 127.0.0.1 whose target can change and whose connections can be cut, as a mobile network's. */
export class TcpProxy {
  private readonly server: Server
  private readonly sockets = new Set<Socket>()
  target: number
  port = 0
  /** While true, each new connection is reset as soon as it is accepted, as a network that is down. */
  refusing = false

  constructor (target: number) {
    this.target = target
    this.server = createServer((inbound) => {
      if (this.refusing) { inbound.resetAndDestroy(); return }
      const outbound = netConnect(this.target, '127.0.0.1')
      this.sockets.add(inbound).add(outbound)
      inbound.pipe(outbound).pipe(inbound)
      const drop = (): void => { inbound.destroy(); outbound.destroy(); this.sockets.delete(inbound); this.sockets.delete(outbound) }
      inbound.on('error', drop).on('close', drop)
      outbound.on('error', drop).on('close', drop)
    })
  }

  async start (): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as { port: number }).port
    return this
  }

  /** Every connection through the proxy is reset at once, without a close frame. */
  cut (): void {
    for (const socket of this.sockets) socket.resetAndDestroy()
    this.sockets.clear()
  }

  close (): Promise<void> {
    this.cut()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

/** Sends `count` broadcasts to `group`, about `perSecond` a second; resolves when all are sent. */
export async function publish (send: (n: number) => unknown, count: number, perSecond: number): Promise<void> {
  const batch = Math.max(1, Math.round(perSecond / 100))
  for (let n = 0; n < count;) {
    for (let i = 0; i < batch && n < count; i++) await send(n++)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A client through `proxy` that reconnects after each of `delays` in turn (then after 50 ms), and records every message. */
export function openClient (t: Test, app: FastifyInstance, proxy: TcpProxy, sub: string, delays: number[] = []) {
  const client = createClient(`ws://127.0.0.1:${proxy.port}/ws`, {
    WebSocket: WebSocket as never,
    getToken: () => app.jwt.sign({ sub }),
    policy: (): Decision => ({ action: 'reconnect', delay: delays.shift() ?? 50 })
  })
  t.teardown(() => client.close())
  const messages: Array<Record<string, any>> = []
  client.on('message', (message) => { messages.push(message as Record<string, any>) })
  return { client, messages }
}

export function nextOpen (client: ChanxClient): Promise<{ reconnected: boolean, recovery?: unknown }> {
  return new Promise((resolve) => { const off = client.on('open', (info) => { off(); resolve(info) }) })
}

export function until (check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (check()) resolve()
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`))
      else setTimeout(poll, 10)
    }
    poll()
  })
}

/** A raw socket: its authentication message, then every later message (parsed), and its close code once closed. */
export function rawSocket (url: string): Promise<{ ws: WebSocket, auth: Record<string, any>, messages: Array<Record<string, any>>, closed: Promise<number> }> {
  const ws = new WebSocket(url)
  const messages: Array<Record<string, any>> = []
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => {
      ws.on('message', (more) => { messages.push(JSON.parse(String(more))) })
      resolve({ ws, auth: JSON.parse(String(data)), messages, closed })
    })
    ws.once('error', reject)
    ws.once('close', (code) => reject(new Error(`closed with ${code} before any message`)))
  })
}
