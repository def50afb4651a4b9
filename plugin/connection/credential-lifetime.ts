import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { Authenticator, ChanxAuthenticator } from '../auth/authenticator'
import { AuthenticationFailed, ChanxRefusal } from '../core/errors'
import type { UserKeyFunction } from '../core/identity'
import { setLongTimeout, type LongTimer } from './limits'
import { AUTHENTICATION_OK_MESSAGE, authenticationMessage, closeReason, refusalCloseCode, statusText } from '../core/wire'

/**
 * A socket outlives the credentials it opened with. This file closes it when they lapse: at the expiry an
 * authenticator recorded (a JWT's `exp`), and whenever a periodic re-run of the route's pipeline refuses.
 */

const expiries = new WeakMap<FastifyRequest, number>()
const watches = new WeakMap<FastifyRequest, CredentialWatch>()

/** Records when the credentials of `request` stop being valid (epoch ms); authenticators call it. */
export function setCredentialExpiry (request: FastifyRequest, expiresAt: number): void {
  expiries.set(request, expiresAt)
}

export function credentialExpiry (request: FastifyRequest): number | undefined {
  return expiries.get(request)
}

export const DETAIL_TOKEN_EXPIRED = 'Token expired'

export interface LifetimeOptions {
  authenticator: ChanxAuthenticator<unknown, unknown>
  sendAuthenticationMessage: boolean
  /** Re-run the pipeline every this many ms (0: never). */
  reauthenticateInterval: number
}

/**
 * Sends a refusal's authentication message (unless messages are off) and closes with 4000 + status, the
 * status text as reason: for a refused handshake and for an open socket whose credentials lapsed alike.
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

export interface CredentialWatch {
  /** Moves the expiry (an in-band token refresh); `undefined` removes it. */
  setExpiry(expiresAt: number | undefined): void
  stop(): void
}

/** Watches the credentials of an accepted socket until it closes. */
export function watchCredentials (socket: WebSocket, request: FastifyRequest, options: LifetimeOptions): CredentialWatch {
  let expiryTimer: LongTimer | undefined
  let interval: NodeJS.Timeout | undefined
  let checking = false

  const expire = (): void => {
    request.log.info('fastify-chanx: credentials expired, closing the socket')
    closeWithRefusal(socket, 401, statusText(401), { detail: DETAIL_TOKEN_EXPIRED }, options.sendAuthenticationMessage)
  }

  const setExpiry = (expiresAt: number | undefined): void => {
    expiryTimer?.cancel()
    expiryTimer = expiresAt === undefined ? undefined : setLongTimeout(expire, expiresAt - Date.now())
  }

  const reauthenticate = async (): Promise<void> => {
    if (checking || socket.readyState !== socket.OPEN) return
    checking = true
    try {
      const result = await options.authenticator.reauthenticate(request)
      if (!result.isAuthenticated) {
        request.log.info({ statusCode: result.statusCode }, 'fastify-chanx: re-authentication refused, closing the socket')
        closeWithRefusal(socket, result.statusCode, result.statusText, result.data, options.sendAuthenticationMessage)
      } else {
        const expiresAt = credentialExpiry(request)
        if (expiresAt !== undefined) setExpiry(expiresAt)
      }
    } catch (err) {
      // An outage of the user store must not log everyone out: keep the socket, try again next time.
      request.log.error({ err }, 'fastify-chanx: re-authentication threw; the socket stays open')
    } finally {
      checking = false
    }
  }

  setExpiry(credentialExpiry(request))
  if (options.reauthenticateInterval > 0) {
    interval = setInterval(() => { void reauthenticate() }, options.reauthenticateInterval)
    interval.unref()
  }

  const stop = (): void => {
    expiryTimer?.cancel()
    if (interval !== undefined) clearInterval(interval)
  }
  socket.once('close', stop)
  const watch = { setExpiry, stop }
  watches.set(request, watch)
  return watch
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
): ((request: FastifyRequest, socket: WebSocket, payload: unknown) => Promise<void>) | null {
  const authenticator = authentication.find((candidate) => typeof candidate.refreshToken === 'function')
  if (authenticator === undefined) return null
  return async function refreshInBand (request, socket, payload) {
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
      watches.get(request)?.setExpiry(credentialExpiry(request))
      if (socket.readyState === socket.OPEN) socket.send(AUTHENTICATION_OK_MESSAGE)
    } catch (err) {
      request.user = previous
      if (!(err instanceof ChanxRefusal)) throw err
      request.log.info('fastify-chanx: an in-band token refresh was refused, closing the socket')
      closeWithRefusal(socket, 401, statusText(401), { detail: err.detail }, sendAuthenticationMessage)
    }
  }
}
