import type { FastifyRequest } from 'fastify'
import { InvalidOptionError } from '../core/errors'

/**
 * Which browser origins may open a socket: a list of origins (`'https://app.example.com'`, or `'*'` for
 * any), or a function deciding per request.
 */
export type AllowedOrigins = readonly string[] | ((origin: string, request: FastifyRequest) => boolean | Promise<boolean>)

/** Decides whether an upgrade request's `Origin` may open the socket; `null` when nothing is checked. */
export type OriginCheck = (request: FastifyRequest) => boolean | Promise<boolean>

export const DETAIL_ORIGIN_REFUSED = 'Cross-origin WebSocket request refused: this origin is not allowed.'

function normalizeOrigin (value: string): string | null {
  if (value === 'null') return null
  try {
    const url = new URL(value)
    return url.origin === 'null' ? null : url.origin
  } catch {
    return null
  }
}

export function checkAllowedOrigins (value: unknown, where: string): AllowedOrigins {
  if (typeof value === 'function') return value as AllowedOrigins
  if (!Array.isArray(value) || value.some((entry) => typeof entry !== 'string')) {
    throw new InvalidOptionError(`${where} must be an array of origins (e.g. "https://app.example.com", or "*") or a function (origin, request) => boolean`)
  }
  for (const entry of value as string[]) {
    if (entry !== '*' && normalizeOrigin(entry) === null) {
      throw new InvalidOptionError(`${where} holds "${entry}", which is not an origin like "https://app.example.com"`)
    }
  }
  return value as readonly string[]
}

/**
 * Cross-site WebSocket hijacking defence. Browsers send cookies on a cross-site handshake, so a route that
 * authenticates by cookie accepts only its own origin unless told otherwise. A request without `Origin`
 * does not come from a browser page and carries no ambient credentials of a victim: it is allowed.
 */
export function createOriginCheck (allowed: AllowedOrigins | undefined, authenticatesByCookie: boolean): OriginCheck | null {
  if (allowed === undefined) {
    if (!authenticatesByCookie) return null
    // Scheme, host and port: `http://app` must not open the socket of `https://app` (a page served over
    // plain HTTP, which a network attacker controls, would ride the cookies of the TLS site). The scheme
    // is Fastify's `request.protocol`: the connection's, or X-Forwarded-Proto when `trustProxy` says so.
    return function sameOrigin (request) {
      const origin = request.headers.origin
      if (origin === undefined) return true
      const normalized = normalizeOrigin(origin)
      return normalized !== null && normalized === normalizeOrigin(`${request.protocol}://${request.host}`)
    }
  }
  if (typeof allowed === 'function') {
    return function customOrigin (request) {
      const origin = request.headers.origin
      return origin === undefined ? true : allowed(origin, request)
    }
  }
  if (allowed.includes('*')) return null
  const origins = new Set(allowed.map((entry) => normalizeOrigin(entry)))
  return function listedOrigin (request) {
    const origin = request.headers.origin
    if (origin === undefined) return true
    return origins.has(normalizeOrigin(origin))
  }
}
