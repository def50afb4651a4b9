import type { FastifyRequest } from 'fastify'
import type { Authenticator } from '../auth/authenticator'
import { takeCredentialExpiry } from '../core/credentials'
import { AuthenticationFailed, ChanxRefusal } from '../core/errors'
import { keyOfUser, type UserKeyFunction } from '../core/identity'
import { AUTHENTICATION_OK_MESSAGE, statusText } from '../core/wire'
import type { RefreshCredentials } from '../messages/compile'

/**
 * A socket outlives the credentials it opened with: its connection (connection.ts) closes it when they
 * lapse, and whenever a periodic re-run of the route's pipeline refuses. This file holds the in-band
 * refresh that moves their expiry while the socket stays open.
 */

/**
 * The built-in `authenticate` action: `{"action":"authenticate","payload":{"token":"<fresh jwt>"}}`. A
 * good token of the same user moves the socket's expiry and is answered with the authentication message
 * (200); a bad one, or one of another user, closes the socket with 4401. `null` when no authenticator
 * of the route can verify a token in-band.
 */
export function createInBandRefresh (
  authentication: readonly Authenticator<unknown>[],
  userKey: UserKeyFunction
): RefreshCredentials | null {
  const authenticator = authentication.find((candidate) => typeof candidate.refreshToken === 'function')
  if (authenticator === undefined) return null
  return async function refreshInBand (request, payload, holder) {
    const token = payload !== null && typeof payload === 'object' ? (payload as { token?: unknown }).token : undefined
    // @fastify/jwt's verification writes request.user: remember who the socket belongs to.
    const previous = request.user
    try {
      const user = await authenticator.refreshToken!(request, token as string)
      if (keyOfUser(userKey, user) !== keyOfUser(userKey, previous)) {
        request.user = previous
        throw new AuthenticationFailed('The token belongs to another user')
      }
      request.user = user as FastifyRequest['user']
      // The last expiry recorded for the request: a refresh that records none leaves the one in force.
      const expiresAt = takeCredentialExpiry(request)
      if (expiresAt !== undefined) holder.setExpiry(expiresAt)
      holder.write(AUTHENTICATION_OK_MESSAGE)
    } catch (err) {
      request.user = previous
      if (!(err instanceof ChanxRefusal)) throw err
      request.log.info('fastify-chanx: an in-band token refresh was refused, closing the socket')
      holder.refuse(401, statusText(401), { detail: err.detail })
    }
  }
}
