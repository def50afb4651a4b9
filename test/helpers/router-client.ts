import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import type {} from '@fastify/websocket'
import WebSocket from 'ws'
import type { FastifyChanxOptions } from '../../plugin'
import { buildApp, listen, serverUrl, type Teardown } from './handshake'

export type { Teardown }

/**
 * A client for the router tests that keeps every frame as the exact text received, so tests assert the
 * wire bytes. `open` uses injectWS; `openReal` a real ws client (the app must be listening).
 */
export class RawClient {
  readonly received: string[] = []
  private readonly waiters: Array<() => void> = []
  private read = 0
  closeCode: number | null = null
  private readonly closeWaiters: Array<(code: number) => void> = []

  constructor (public socket: WebSocket) {
    socket.on('message', (data) => {
      this.received.push(data.toString())
      for (const wake of this.waiters.splice(0)) wake()
    })
    socket.on('close', (code) => {
      this.closeCode = code
      for (const wake of this.waiters.splice(0)) wake()
      for (const resolve of this.closeWaiters.splice(0)) resolve(code)
    })
    socket.on('error', () => {})
  }

  /** The next unread frame, as text. */
  async next (timeout = 2000): Promise<string> {
    const deadline = Date.now() + timeout
    while (this.read >= this.received.length) {
      if (this.closeCode !== null) throw new Error(`closed (${this.closeCode}) with nothing left to read`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no frame within ${timeout} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return this.received[this.read++] as string
  }

  /** The next `count` frames. */
  async take (count: number, timeout = 2000): Promise<string[]> {
    const frames: string[] = []
    for (let i = 0; i < count; i++) frames.push(await this.next(timeout))
    return frames
  }

  send (data: unknown): void {
    this.socket.send(typeof data === 'string' || Buffer.isBuffer(data) ? data : JSON.stringify(data))
  }

  closed (timeout = 2000): Promise<number> {
    if (this.closeCode !== null) return Promise.resolve(this.closeCode)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not closed within ${timeout} ms`)), timeout)
      this.closeWaiters.push((code) => { clearTimeout(timer); resolve(code) })
    })
  }
}

export async function open (app: FastifyInstance, path: string, headers: Record<string, string> = {}): Promise<RawClient> {
  let client: RawClient | undefined
  await app.injectWS(path, { headers }, { onInit: (socket) => { client = new RawClient(socket) } })
  return client as RawClient
}

export function openReal (url: string): Promise<RawClient> {
  const socket = new WebSocket(url)
  const client = new RawClient(socket)
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(client))
    socket.once('error', reject)
  })
}

export const AUTH_OK = '{"action":"authentication","payload":{"status_code":200,"status_text":"OK","data":{"detail":"OK"}}}'

/** A logger stream that keeps every line as an object, for asserting what was logged. */
export function logCapture (): { stream: { write (line: string): void }, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  return { lines, stream: { write (line: string) { lines.push(JSON.parse(line) as Record<string, unknown>) } } }
}

/**
 * An app with only @fastify/websocket and fastify-chanx, closed (sockets terminated) on teardown. The caller
 * adds its routes, then `await app.ready()` or listens.
 */
export function socketApp (
  t: Teardown,
  options: { chanx?: FastifyChanxOptions, server?: FastifyServerOptions } = {}
): Promise<FastifyInstance> {
  return buildApp(t, { ...options, auth: false })
}

/** Listens on an ephemeral port of 127.0.0.1; the ws:// URL of `path` there. */
export async function listenUrl (app: FastifyInstance, path: string): Promise<string> {
  await listen(app)
  return serverUrl(app, path)
}
