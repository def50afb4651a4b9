import type { FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket, WebSocketServer } from 'ws'
import type { AuthenticationResult } from '../auth/authenticator'
import { authenticationMessage, closeReason, refusalCloseCode } from '../core/wire'
import { upgradeSocket } from '../core/ws-internals'
import type { RouteHandshake } from './route-options'

/**
 * A refused handshake's socket (DESIGN "The authentication message"): the upgrade completes, the refusal's
 * authentication message goes out, and the socket closes with 4000 + status. No connection owns such a socket.
 */

/**
 * Sends a refusal's authentication message (unless messages are off) and closes with 4000 + status, the
 * status text as reason: for a refused handshake's socket, which no connection owns.
 */
export function closeWithRefusal (
  socket: WebSocket,
  statusCode: number,
  text: string,
  data: unknown,
  sendMessage: boolean
): void {
  if (socket.readyState !== socket.OPEN) return
  if (sendMessage) socket.send(authenticationMessage(statusCode, text, data))
  socket.close(refusalCloseCode(statusCode), closeReason(text))
}

/** A refused socket whose refusal could not be flushed to the kernel by then is cut all the same (ms). */
const REFUSED_FLUSH_TIMEOUT = 1000

/**
 * Cuts a refused socket once its message and close frame are flushed, instead of reading on until the client
 * answers the close (ws waits up to 30 s): whatever the client sends after the handshake (an endless
 * fragmented message) then has nothing to land in.
 */
function cutWhenFlushed (socket: WebSocket, deadline: number): void {
  if (socket.readyState === socket.CLOSED) return
  if (socket.bufferedAmount === 0 || Date.now() >= deadline) {
    socket.terminate()
    return
  }
  setTimeout(cutWhenFlushed, 10, socket, deadline).unref()
}

/** Completes the upgrade, sends the refusal, closes with 4000 + status and cuts the connection once flushed. */
export function refuseSocket (
  request: FastifyRequest,
  reply: FastifyReply,
  result: AuthenticationResult<unknown, unknown>,
  route: RouteHandshake,
  wss: WebSocketServer
): void {
  reply.hijack()
  try {
    upgradeSocket(wss, request.raw, (socket: WebSocket) => {
      socket.on('error', (err) => request.log.debug({ err }, 'fastify-chanx: a refused socket failed'))
      closeWithRefusal(socket, result.statusCode, result.statusText, result.data, route.sendAuthenticationMessage)
      cutWhenFlushed(socket, Date.now() + REFUSED_FLUSH_TIMEOUT)
    })
  } catch (err) {
    request.log.error({ err }, 'fastify-chanx: could not complete the refused upgrade')
    request.raw.socket?.destroy()
  }
}
