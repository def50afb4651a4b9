import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type RouteShorthandOptions } from 'fastify'
import cookie from '@fastify/cookie'
import session from '@fastify/session'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx, { type Authenticator, type FastifyChanxOptions } from '../../plugin'

/** Shared by the handshake-*.test.ts files: small apps with the whole stack, and sockets that record everything. */

export const SESSION_SECRET = 'a-handshake-session-secret-of-more-than-32-chars'
export const JWT_SECRET = 'a-handshake-jwt-secret-of-32-characters!!'

export const OK_MESSAGE = '{"action":"authentication","payload":{"status_code":200,"status_text":"OK","data":{"detail":"OK"}}}'
export const NOT_PROVIDED_403 = '{"action":"authentication","payload":{"status_code":403,"status_text":"Forbidden","data":{"detail":"Authentication credentials were not provided."}}}'
export const NOT_PROVIDED_401 = '{"action":"authentication","payload":{"status_code":401,"status_text":"Unauthorized","data":{"detail":"Authentication credentials were not provided."}}}'
export const PERMISSION_DENIED_403 = '{"action":"authentication","payload":{"status_code":403,"status_text":"Forbidden","data":{"detail":"You do not have permission to perform this action."}}}'
export const NOT_FOUND_404 = '{"action":"authentication","payload":{"status_code":404,"status_text":"Not Found","data":{"detail":"Not found."}}}'
export const INTERNAL_500 = '{"action":"authentication","payload":{"status_code":500,"status_text":"Internal Server Error","data":{"detail":"Internal server error"}}}'

/** The authentication message of a refusal, byte for byte as the plugin must send it. */
export function refusal (statusCode: number, statusText: string, detail: string): string {
  return `{"action":"authentication","payload":{"status_code":${statusCode},"status_text":"${statusText}","data":{"detail":${JSON.stringify(detail)}}}}`
}

export interface Teardown {
  teardown (fn: () => unknown): void
}

export interface BuildOptions {
  chanx?: FastifyChanxOptions
  server?: FastifyServerOptions
  /** Register @fastify/cookie, @fastify/session and @fastify/jwt (default true). */
  auth?: boolean
}

/** Terminates every socket the server holds (injectWS streams never end by themselves), then closes the app. */
export async function closeApp (app: FastifyInstance): Promise<void> {
  for (const socket of app.websocketServer?.clients ?? []) socket.terminate()
  await app.close()
}

/**
 * An app with @fastify/cookie, @fastify/session, @fastify/jwt (token cookie `token`), @fastify/websocket and
 * fastify-chanx, in that order. Routes are added by the caller, then `await app.ready()`. Closed on teardown.
 */
export async function buildApp (t: Teardown, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(options.server)
  t.teardown(() => closeApp(app))
  if (options.auth !== false) {
    await app.register(cookie)
    await app.register(session, { secret: SESSION_SECRET, cookie: { secure: false } })
    await app.register(jwt, { secret: JWT_SECRET, cookie: { cookieName: 'token', signed: false } })
  }
  await app.register(websocket)
  await app.register(chanx, options.chanx ?? {})
  return app
}

/** A Fastify logger writing JSON lines into `lines`. */
export function captureLogs (): { lines: Array<Record<string, unknown>>, logger: { level: string, stream: Writable } } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      }
      callback()
    }
  })
  return { lines, logger: { level: 'error', stream } }
}

/** What a socket saw: every text frame in order and, once it closed, the close code and reason. */
export class Recorded {
  readonly messages: string[] = []
  code: number | null = null
  reason = ''
  socket!: WebSocket
  private readonly closeWaiters: Array<() => void> = []
  private readonly messageWaiters: Array<() => void> = []

  attach (socket: WebSocket): void {
    this.socket = socket
    socket.on('error', () => {})
    socket.on('message', (data: WebSocket.RawData) => {
      this.messages.push(Buffer.isBuffer(data) ? data.toString() : Buffer.from(data as ArrayBuffer).toString())
      for (const wake of this.messageWaiters.splice(0)) wake()
    })
    socket.on('close', (code: number, reason: Buffer) => {
      this.code = code
      this.reason = reason.toString()
      for (const wake of this.closeWaiters.splice(0)) wake()
      for (const wake of this.messageWaiters.splice(0)) wake()
    })
  }

  /** The close code, waiting at most `ms`. */
  async closed (ms = 2000): Promise<number> {
    if (this.code !== null) return this.code
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the socket did not close within ${ms} ms; got ${JSON.stringify(this.messages)}`)), ms)
      this.closeWaiters.push(() => { clearTimeout(timer); resolve() })
    })
    return this.code as unknown as number
  }

  /** Resolves once `count` messages arrived, waiting at most `ms`. */
  async waitForMessages (count: number, ms = 2000): Promise<string[]> {
    const deadline = Date.now() + ms
    while (this.messages.length < count) {
      const left = deadline - Date.now()
      if (left <= 0 || this.code !== null) {
        throw new Error(`expected ${count} messages within ${ms} ms, got ${JSON.stringify(this.messages)} (close ${this.code})`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.messageWaiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return this.messages
  }
}

export interface OpenOptions {
  headers?: Record<string, string>
}

/** Opens a socket through `app.injectWS`, listeners attached in `onInit` so the first frame is not lost. */
export async function injectSocket (app: FastifyInstance, path: string, options: OpenOptions = {}): Promise<Recorded> {
  const recorded = new Recorded()
  await app.injectWS(path, { headers: options.headers ?? {} }, { onInit: (ws) => recorded.attach(ws) })
  return recorded
}

/** Opens `path` through injectWS and waits until the server closes it: the messages it got and the code. */
export async function injectRefused (app: FastifyInstance, path: string, options: OpenOptions = {}, ms = 2000): Promise<Recorded> {
  const recorded = await injectSocket(app, path, options)
  await recorded.closed(ms)
  return recorded
}

export function serverUrl (app: FastifyInstance, path: string): string {
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('the app is not listening on a port')
  return `ws://127.0.0.1:${address.port}${path}`
}

/** Listens on an ephemeral port on 127.0.0.1 and returns the ws:// base for `path`. */
export async function listen (app: FastifyInstance): Promise<void> {
  await app.listen({ port: 0, host: '127.0.0.1' })
}

export interface RealSocket extends Recorded {
  /** Resolves when the socket opened; rejects on an error or an unexpected response. */
  opened: Promise<void>
}

/**
 * A real `ws` client on the listening app. `onOpen` runs synchronously in the 'open' event (to send frames
 * before anything else happens). Terminated on teardown.
 */
export function realSocket (
  t: Teardown,
  app: FastifyInstance,
  path: string,
  options: OpenOptions & { onOpen?: (ws: WebSocket) => void } = {}
): RealSocket {
  const recorded = new Recorded() as RealSocket
  const ws = new WebSocket(serverUrl(app, path), { headers: options.headers ?? {}, handshakeTimeout: 2000 })
  t.teardown(() => ws.terminate())
  recorded.attach(ws)
  recorded.opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      options.onOpen?.(ws)
      resolve()
    })
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`unexpected response ${res.statusCode}`), { statusCode: res.statusCode })))
  })
  recorded.opened.catch(() => {})
  return recorded
}

export interface UpgradeResponse {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** A real `ws` client whose upgrade is expected to be answered with an HTTP status: the response, body read. */
export function rejectedUpgrade (t: Teardown, app: FastifyInstance, path: string, options: OpenOptions = {}): Promise<UpgradeResponse> {
  const ws = new WebSocket(serverUrl(app, path), { headers: options.headers ?? {}, handshakeTimeout: 2000 })
  t.teardown(() => ws.terminate())
  return new Promise<UpgradeResponse>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no unexpected-response within 2000 ms')), 2000)
    ws.once('open', () => { clearTimeout(timer); reject(new Error('the upgrade was accepted')) })
    ws.on('error', () => {})
    ws.once('unexpected-response', (req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => {
        clearTimeout(timer)
        req.destroy()
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body })
      })
    })
  })
}

/** `name=value; ...` from the Set-Cookie headers of an inject response. */
export function cookieHeader (cookies: ReadonlyArray<{ name: string, value: string }>): string {
  return cookies.map((c) => `${c.name}=${c.value}`).join('; ')
}

/** An unsigned token with `alg: none`, built by hand as an attacker would. */
export function unsignedToken (payload: Record<string, unknown>): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode(payload)}.`
}

export function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Authenticates by the `x-user` header: `{ name }` from it, or "not attempted" (null) without it. No challenge. */
export const headerUser: Authenticator = {
  authenticate: (request) => {
    const name = request.headers['x-user']
    return typeof name === 'string' ? { name } : null
  }
}

export interface RefusedRouteOptions extends BuildOptions, OpenOptions {
  /** The route's URL (default '/ws'). */
  url?: string
  /** What the client opens (default `url`). */
  path?: string
}

/**
 * An app (see buildApp) with one socket route that must refuse: its handler fails the test if it runs.
 * Opens the route through injectWS and waits for the server to close it.
 */
export async function refusedRoute (t: Teardown & { fail (message: string): void }, route: Omit<RouteShorthandOptions, 'websocket'>, options: RefusedRouteOptions = {}): Promise<Recorded> {
  const url = options.url ?? '/ws'
  const app = await buildApp(t, options)
  app.get(url, { ...route, websocket: true }, () => t.fail('handler ran'))
  await app.ready()
  return injectRefused(app, options.path ?? url, options)
}
