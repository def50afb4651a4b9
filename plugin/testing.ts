import type { IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type {} from '@fastify/websocket'
import type { RawData, WebSocket } from 'ws'
import type { AuthenticationPayload } from './core/wire'

export type { AuthenticationPayload } from './core/wire'

/**
 * Testing helpers for socket routes, over `app.injectWS` (no port, no network): connect as a user, await
 * the authentication message, send actions, read what comes back, await the close code.
 *
 *     import { connect } from 'fastify-chanx/testing'
 *     await app.ready()   // connect() does it too, within its connectTimeout
 *     const alice = await connect(app, '/ws/rooms/lobby', { cookies: { sessionId } })
 *     t.equal((await alice.authentication()).status_code, 200)
 */

export interface ConnectOptions {
  /** Sent as the Cookie header: a ready header string, or name/value pairs. */
  cookies?: string | Record<string, string>
  headers?: Record<string, string>
  /** Appended to the path as a query string. */
  query?: Record<string, string>
  /** How long `receive`, `authentication` and `closed` wait before they reject (default 2000 ms). */
  timeout?: number
  /**
   * How long `connect` itself may take, `app.ready()` included, before it rejects with a sentence saying
   * which step did not finish (default 5000 ms).
   */
  connectTimeout?: number
}

const CONNECT_TIMEOUT = 5000

/** A received message: JSON-parsed when it was JSON text, else the raw string. */
export interface ReceivedMessage {
  action?: string
  payload?: unknown
  [key: string]: unknown
}

interface Waiter {
  resolve: (message: ReceivedMessage) => void
  reject: (error: Error) => void
  timer: NodeJS.Timeout
}

function decode (data: RawData): ReceivedMessage {
  const text = data.toString()
  try {
    const value: unknown = JSON.parse(text)
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as ReceivedMessage
  } catch {}
  return { raw: text }
}

function cookieHeader (cookies: string | Record<string, string>): string {
  if (typeof cookies === 'string') return cookies
  return Object.entries(cookies).map(([name, value]) => `${name}=${encodeURIComponent(value)}`).join('; ')
}

export class ChanxTestClient {
  /** Every message received so far, in order, including those already returned by `receive`. */
  readonly messages: ReceivedMessage[] = []
  private readonly unread: ReceivedMessage[] = []
  private readonly waiters: Waiter[] = []
  private closeCode: number | null = null
  private closeReason = ''
  private readonly closeWaiters: Array<(code: number) => void> = []
  socket!: WebSocket

  constructor (private readonly timeout: number) {}

  /** @internal attached in injectWS's onInit, before the first frame can arrive. */
  attach (socket: WebSocket): void {
    this.socket = socket
    socket.on('message', (data) => {
      const message = decode(data)
      this.messages.push(message)
      const waiter = this.waiters.shift()
      if (waiter === undefined) {
        this.unread.push(message)
      } else {
        clearTimeout(waiter.timer)
        waiter.resolve(message)
      }
    })
    socket.on('close', (code, reason) => {
      this.closeCode = code
      this.closeReason = reason.toString()
      for (const waiter of this.waiters.splice(0)) {
        clearTimeout(waiter.timer)
        waiter.reject(new Error(`the socket closed (${code}) before a message arrived`))
      }
      for (const resolve of this.closeWaiters.splice(0)) resolve(code)
    })
  }

  /** The next message not yet read. */
  receive (timeout = this.timeout): Promise<ReceivedMessage> {
    const message = this.unread.shift()
    if (message !== undefined) return Promise.resolve(message)
    if (this.closeCode !== null) return Promise.reject(new Error(`the socket is closed (${this.closeCode})`))
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1)
          reject(new Error(`no message within ${timeout} ms`))
        }, timeout)
      }
      this.waiters.push(waiter)
    })
  }

  /** Every message up to and including the first whose action is `action`. */
  async receiveUntil (action: string, timeout = this.timeout): Promise<ReceivedMessage[]> {
    const received: ReceivedMessage[] = []
    for (;;) {
      const message = await this.receive(timeout)
      received.push(message)
      if (message.action === action) return received
    }
  }

  /** The payload of the authentication message, which is the first message a socket receives. */
  async authentication (timeout = this.timeout): Promise<AuthenticationPayload> {
    const message = await this.receive(timeout)
    if (message.action !== 'authentication') {
      throw new Error(`expected the authentication message first, got ${JSON.stringify(message)}`)
    }
    return message.payload as AuthenticationPayload
  }

  /** Sends `{"action": action, "payload": payload}`. */
  sendAction (action: string, payload: unknown = null): void {
    this.socket.send(JSON.stringify({ action, payload }))
  }

  /** Sends a raw frame: a string, or JSON for anything else. */
  send (data: unknown): void {
    this.socket.send(typeof data === 'string' || Buffer.isBuffer(data) ? data : JSON.stringify(data))
  }

  /** The close code, once the socket has closed. */
  closed (timeout = this.timeout): Promise<number> {
    if (this.closeCode !== null) return Promise.resolve(this.closeCode)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the socket did not close within ${timeout} ms`)), timeout)
      this.closeWaiters.push((code) => { clearTimeout(timer); resolve(code) })
    })
  }

  get reason (): string {
    return this.closeReason
  }

  close (code = 1000): void {
    this.socket.close(code)
  }

  terminate (): void {
    this.socket.terminate()
  }
}

/**
 * @fastify/websocket 11.3.7's `injectWS` sends `Sec-WebSocket-Version` as the number 13, after the headers it
 * is given (so they cannot replace it); ws 8.23.1 and later compare it as the string '13' an HTTP parser
 * yields, and answer 400. This listener, put first on the server's `'upgrade'` event (which `injectWS` emits
 * synchronously) for the duration of the call, hands ws the header as a real request carries it.
 */
function versionAsString (request: IncomingMessage): void {
  const headers = request.headers as Record<string, unknown>
  if (typeof headers['sec-websocket-version'] === 'number') headers['sec-websocket-version'] = String(headers['sec-websocket-version'])
}

/** `promise`, or a rejection with `message` once `deadline` (ms since the epoch) has passed. */
function before<T> (promise: Promise<T>, deadline: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), Math.max(0, deadline - Date.now()))
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/**
 * Opens a socket on `path` through `app.injectWS`, with listeners in place before the first frame. Makes the
 * app ready first (`await app.ready()`); rejects, never hangs, when that or the upgrade takes longer than
 * `connectTimeout`.
 */
export async function connect (app: FastifyInstance, path: string, options: ConnectOptions = {}): Promise<ChanxTestClient> {
  const connectTimeout = options.connectTimeout ?? CONNECT_TIMEOUT
  const deadline = Date.now() + connectTimeout
  await before(Promise.resolve(app.ready()), deadline, `fastify-chanx/testing: connect(${path}): app.ready() did not finish within ` +
    `${connectTimeout} ms (a plugin that never finishes loading?)`)
  const client = new ChanxTestClient(options.timeout ?? 2000)
  const headers: Record<string, string> = { ...options.headers }
  if (options.cookies !== undefined) headers.cookie = cookieHeader(options.cookies)
  let url = path
  if (options.query !== undefined) {
    url += (path.includes('?') ? '&' : '?') + new URLSearchParams(options.query).toString()
  }
  app.server.prependListener('upgrade', versionAsString)
  let upgraded: Promise<WebSocket>
  try {
    upgraded = app.injectWS(url, { headers }, { onInit: (socket) => client.attach(socket) })
  } finally {
    app.server.removeListener('upgrade', versionAsString)
  }
  await before(upgraded, deadline, `fastify-chanx/testing: connect(${path}): the upgrade got no answer within ${connectTimeout} ms`)
  return client
}

/** Several users at once, as Chanx's multi-user testing: one client per entry, in order. */
export function connectMany (
  app: FastifyInstance,
  connections: ReadonlyArray<{ path: string } & ConnectOptions>
): Promise<ChanxTestClient[]> {
  return Promise.all(connections.map(({ path, ...options }) => connect(app, path, options)))
}

/**
 * Terminates every socket of the app, then closes it. Sockets opened by `injectWS` never see their
 * stream end, so a plain `app.close()` waits for ws's 30 s closing timeout on each of them.
 */
export async function closeApp (app: FastifyInstance): Promise<void> {
  for (const socket of app.websocketServer.clients) socket.terminate()
  await app.close()
}
