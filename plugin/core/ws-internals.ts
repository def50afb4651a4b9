import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { WebSocket, WebSocketServer } from 'ws'

/**
 * A refused handshake still completes the WebSocket upgrade (DESIGN: a browser can read a close code but
 * not the HTTP status of a refused upgrade), yet must never reach the route's handler. @fastify/websocket
 * only upgrades from inside the route handler, so the refusal upgrades the socket itself, from the same
 * socket and head that @fastify/websocket stored on the raw request under its private symbols
 * (`ws-socket`, `ws-head`). They are found by description once; a real socket falls back to `raw.socket`.
 */
let socketSymbol: symbol | undefined
let headSymbol: symbol | undefined

function findSymbols (raw: IncomingMessage): void {
  for (const symbol of Object.getOwnPropertySymbols(raw)) {
    if (symbol.description === 'ws-socket') socketSymbol = symbol
    else if (symbol.description === 'ws-head') headSymbol = symbol
  }
}

const EMPTY_HEAD = Buffer.alloc(0)

export function upgradeSocket (wss: WebSocketServer, raw: IncomingMessage, onSocket: (socket: WebSocket) => void): void {
  if (socketSymbol === undefined || headSymbol === undefined) findSymbols(raw)
  const carrier = raw as unknown as Record<symbol, unknown>
  const stream = (socketSymbol === undefined ? undefined : carrier[socketSymbol]) as Duplex | undefined ?? raw.socket
  const head = (headSymbol === undefined ? undefined : carrier[headSymbol]) as Buffer | undefined ?? EMPTY_HEAD
  if (stream === undefined || stream === null) {
    throw new Error('fastify-chanx: the upgrade request carries no socket; is @fastify/websocket registered?')
  }
  wss.handleUpgrade(raw, stream, head, onSocket)
}
