import type { FastifyRequest } from 'fastify'

/**
 * A socket outlives the credentials it opened with. Authenticators record here when they lapse (a JWT's
 * `exp`); the socket's connection (connection/connection.ts) takes the time and closes the socket then.
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
