import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'

/**
 * A WebSocket server on 127.0.0.1 that plays a script instead of fastify-chanx: the broken or hostile
 * server the client must survive. It records every handshake's URL.
 */
export interface ScriptedServer {
  url: string
  /** The URL (path and query) of each handshake, in order. */
  handshakes: string[]
  /** The sockets still open on the server side. */
  sockets: Set<WebSocket>
  close (): Promise<void>
}

export const OK = JSON.stringify({ action: 'authentication', payload: { status_code: 200, status_text: 'OK', data: { detail: 'OK' } } })

/** The authentication message, 200, with `extra` top-level fields (`chanx_recovery`...). */
export function authenticated (extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ action: 'authentication', payload: { status_code: 200, status_text: 'OK', data: { detail: 'OK' } }, ...extra })
}

/** `maxHeaderSize`: Node answers 431 to a handshake whose URL and headers are larger. */
export async function startScripted (script: (socket: WebSocket, url: string, index: number) => void,
  options: { maxHeaderSize?: number } = {}): Promise<ScriptedServer> {
  const server = createServer({ maxHeaderSize: options.maxHeaderSize ?? 16384 })
  const wss = new WebSocketServer({ server })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const handshakes: string[] = []
  const sockets = new Set<WebSocket>()
  wss.on('connection', (socket, request) => {
    handshakes.push(request.url ?? '')
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    script(socket, request.url ?? '', handshakes.length - 1)
  })
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`,
    handshakes,
    sockets,
    close: async () => {
      for (const socket of wss.clients) socket.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** A JWT-shaped token (unsigned: the scripted server never checks it) with these claims. */
export function fakeToken (claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  return part({ alg: 'none', typ: 'JWT' }) + '.' + part(claims) + '.sig'
}

/** The resume a client sent with its handshake (`chanx_recover`), decoded; null when it sent none. */
export function resumeOf (url: string): unknown {
  const value = new URL(url, 'http://x').searchParams.get('chanx_recover')
  return value === null ? null : JSON.parse(Buffer.from(value, 'base64url').toString('utf8'))
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
