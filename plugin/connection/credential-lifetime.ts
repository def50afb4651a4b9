import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { Authenticator } from '../auth/authenticator'
import { AuthenticationFailed, ChanxRefusal } from '../core/errors'
import type { UserKeyFunction } from '../core/identity'
import { AUTHENTICATION_OK_MESSAGE, authenticationMessage, closeReason, refusalCloseCode, statusText } from '../core/wire'

/**
 * A socket outlives the credentials it opened with. Authenticators record when they lapse (a JWT's `exp`);
 * the socket's connection (connection.ts) closes it then, and whenever a periodic re-run of the route's
 * pipeline refuses. This file holds what authenticators and the in-band refresh share with it.
 */

const expiries = new WeakMap<FastifyRequest, number>()

/** Records when the credentials of `request` stop being valid (epoch ms); authenticators call it. */
export function setCredentialExpiry (request: FastifyRequest, expiresAt: number): void {
  expiries.set(request, expiresAt)
}

export function credentialExpiry (request: FastifyRequest): number | undefined {
  return expiries.get(request)
}

/**
 * The expiry recorded for `request` since the last take, forgotten here: the open connection keeps it
 * from then on, so an idle socket holds no entry in this map (docs/benchmarks.md "Memory per idle connection").
 */
export function takeCredentialExpiry (request: FastifyRequest): number | undefined {
  const expiresAt = expiries.get(request)
  if (expiresAt !== undefined) expiries.delete(request)
  return expiresAt
}

export const DETAIL_TOKEN_EXPIRED = 'Token expired'
export const DETAIL_ANOTHER_USER = 'The credentials belong to another user'

export interface CredentialHolder {
  /** Moves the expiry (an in-band token refresh); `undefined` removes it. */
  setExpiry (expiresAt: number | undefined): void
  /** Sends the refusal's authentication message (unless messages are off) and closes with 4000 + status. */
  refuse (statusCode: number, text: string, data: unknown): void
  write (text: string): void
}

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

/**
 * The built-in `authenticate` action: `{"action":"authenticate","payload":{"token":"<fresh jwt>"}}`. A
 * good token of the same user moves the socket's expiry and is answered with the authentication message
 * (200); a bad one, or one of another user, closes the socket with 4401. `null` when no authenticator
 * of the route can verify a token in-band.
 */
export function createInBandRefresh (
  authentication: readonly Authenticator<unknown>[],
  userKey: UserKeyFunction,
  sendAuthenticationMessage: boolean
): ((request: FastifyRequest, socket: WebSocket, payload: unknown, holder?: CredentialHolder) => Promise<void>) | null {
  const authenticator = authentication.find((candidate) => typeof candidate.refreshToken === 'function')
  if (authenticator === undefined) return null
  // `holder`: the socket's open connection, which keeps its expiry and sends through its output.
  return async function refreshInBand (request, socket, payload, holder) {
    const token = payload !== null && typeof payload === 'object' ? (payload as { token?: unknown }).token : undefined
    // @fastify/jwt's verification writes request.user: remember who the socket belongs to.
    const previous = request.user
    try {
      const user = await authenticator.refreshToken!(request, token as string)
      if ((userKey(user) ?? null) !== (userKey(previous) ?? null)) {
        request.user = previous
        throw new AuthenticationFailed('The token belongs to another user')
      }
      request.user = user as FastifyRequest['user']
      if (holder !== undefined) {
        // The last expiry recorded for the request: a refresh that records none leaves the one in force.
        const expiresAt = takeCredentialExpiry(request)
        if (expiresAt !== undefined) holder.setExpiry(expiresAt)
        holder.write(AUTHENTICATION_OK_MESSAGE)
      } else if (socket.readyState === socket.OPEN) socket.send(AUTHENTICATION_OK_MESSAGE)
    } catch (err) {
      request.user = previous
      if (!(err instanceof ChanxRefusal)) throw err
      request.log.info('fastify-chanx: an in-band token refresh was refused, closing the socket')
      if (holder !== undefined) holder.refuse(401, statusText(401), { detail: err.detail })
      else closeWithRefusal(socket, 401, statusText(401), { detail: err.detail }, sendAuthenticationMessage)
    }
  }
}
