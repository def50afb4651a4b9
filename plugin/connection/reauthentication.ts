import type { FastifyRequest } from 'fastify'
import type { ChanxAuthenticator } from '../auth/authenticator'
import { DETAIL_ANOTHER_USER, takeCredentialExpiry } from '../core/credentials'
import { keyOfUser, type UserKeyFunction } from '../core/identity'
import { statusText } from '../core/wire'

/** The detail of the refusal a re-authentication past its deadline closes the socket with (4503). */
export const DETAIL_REAUTHENTICATION_TIMED_OUT = 'Re-authentication timed out'

const TIMED_OUT: unique symbol = Symbol('fastify-chanx.reauthentication-timed-out')

/** What a re-authentication acts on: the socket's open connection. */
export interface Reauthenticated {
  readonly request: FastifyRequest
  /** The user of the handshake. */
  readonly userKey: string | null
  readonly released: boolean
  /** Sends the refusal's authentication message (unless messages are off) and closes with 4000 + status. */
  refuse (statusCode: number, text: string, data: unknown): void
  setExpiry (expiresAt: number | undefined): void
}

/**
 * Re-runs the route's pipeline for an open socket (`reauthenticateInterval`): a refusal closes the socket with
 * 4000 + status, a pipeline that now yields another user closes it with 4401, and an expiry it records moves
 * the socket's. A pipeline that throws leaves the socket open. A pipeline still pending after `timeout` ms
 * counts as a refusal: the socket is closed with 4503 "Re-authentication timed out" (the client reconnects,
 * and its new handshake runs the pipeline afresh). Without that deadline a user store that hung once would
 * keep this socket from ever being re-authenticated again. Never rejects; settles by the deadline.
 */
export async function reauthenticate (connection: Reauthenticated, authenticator: ChanxAuthenticator<unknown, unknown>,
  userKey: UserKeyFunction, timeout: number): Promise<void> {
  const request = connection.request
  const log = request.log
  const previous = request.user
  let timer: NodeJS.Timeout | undefined
  try {
    const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(resolve, timeout, TIMED_OUT)
      timer.unref()
    })
    const result = await Promise.race([authenticator.reauthenticate(request), deadline])
    if (connection.released) return
    if (result === TIMED_OUT) {
      // What the hung pipeline later assigns to request.user no longer matters: the socket is closing.
      log.warn({ timeout }, 'fastify-chanx: re-authentication timed out, closing the socket')
      connection.refuse(503, statusText(503), { detail: DETAIL_REAUTHENTICATION_TIMED_OUT })
      return
    }
    if (!result.isAuthenticated) {
      log.info({ statusCode: result.statusCode }, 'fastify-chanx: re-authentication refused, closing the socket')
      connection.refuse(result.statusCode, result.statusText, result.data)
    } else if (keyOfUser(userKey, result.user) !== connection.userKey) {
      // The socket, its slots and its hub membership belong to the user of the handshake.
      request.user = previous
      log.warn('fastify-chanx: re-authentication yielded another user, closing the socket')
      connection.refuse(401, statusText(401), { detail: DETAIL_ANOTHER_USER })
    } else {
      // The last expiry recorded for the request: a re-run that records none leaves the one in force.
      const expiry = takeCredentialExpiry(request)
      if (expiry !== undefined) connection.setExpiry(expiry)
    }
  } catch (err) {
    // An outage of the user store must not log everyone out: keep the socket, try again next time.
    log.error({ err }, 'fastify-chanx: re-authentication threw; the socket stays open')
  } finally {
    clearTimeout(timer)
  }
}
