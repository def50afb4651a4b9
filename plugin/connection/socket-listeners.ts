import type { WebSocket } from 'ws'
import type { RawFrame } from '../messages/dispatch'

/**
 * The listeners a connection puts on its socket: shared functions, not closures, that find the connection
 * through a symbol on the socket.
 */

/** What the listeners call on the socket's connection. */
export interface SocketOwner {
  /** The socket's one 'close' listener. */
  closed (code: number): void
  receive (data: RawFrame, isBinary: boolean): void
  /** A ping from the peer (with an idle timeout). */
  touch (): void
  /** The peer's answer to the heartbeat. */
  ponged (): void
}

const kConnection = Symbol('fastify-chanx.connection')

type Carrier = { [kConnection]?: SocketOwner }

/** Makes `owner` the connection the listeners below reach from `socket`. */
export function carry (socket: WebSocket, owner: SocketOwner): void {
  (socket as WebSocket & Carrier)[kConnection] = owner
}

export function onSocketClose (this: WebSocket & Carrier, code: number): void {
  const connection = this[kConnection]
  if (connection === undefined) return
  connection.closed(code)
}

export function onFrame (this: WebSocket & Carrier, data: RawFrame, isBinary: boolean): void {
  this[kConnection]?.receive(data, isBinary)
}

export function onPing (this: WebSocket & Carrier): void {
  this[kConnection]?.touch()
}

export function onPong (this: WebSocket & Carrier): void {
  this[kConnection]?.ponged()
}
