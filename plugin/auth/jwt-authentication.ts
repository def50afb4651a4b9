import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Authenticator, CredentialSource } from './authenticator'
import { AuthenticationFailed, InvalidOptionError, MissingDependencyError } from '../core/errors'
import { DETAIL_TOKEN_EXPIRED, setCredentialExpiry } from '../core/credentials'
import type { ChanxUser } from '../core/user-types'

export interface JwtCookieOptions {
  name: string
  /** The cookie is signed by @fastify/cookie (`request.unsignCookie`). */
  signed?: boolean
}

/**
 * The verified payload's type: the `payload` an app declared in @fastify/jwt's `FastifyJWT` interface (read
 * through the `app.jwt.sign` it types), @fastify/jwt's default `string | object | Buffer` without one, and
 * `unknown` when @fastify/jwt's types are not loaded.
 */
export type JwtPayload = FastifyInstance extends { jwt: { sign: (payload: infer Payload, ...rest: never[]) => unknown } }
  ? Payload
  : unknown

export interface JwtAuthenticationOptions<User = ChanxUser> {
  /**
   * Read `Authorization: Bearer <token>` (default true). Browsers cannot set this header on a WebSocket;
   * use the cookie there.
   */
  header?: boolean
  /**
   * The HTTP-only cookie holding the token. Defaults to @fastify/jwt's own `cookie.cookieName` when it was
   * registered with one; `false` turns cookies off.
   */
  cookie?: string | JwtCookieOptions | false
  /** The query parameter holding the token (e.g. `'token'` for `?token=`). Off unless named: URLs get logged. */
  query?: string | false
  /**
   * Read the token from a `Sec-WebSocket-Protocol` value `<prefix>.<jwt>`, which a browser can send without
   * putting the token in the URL: `new WebSocket(url, ['chanx', 'bearer.' + jwt])` with `protocol: 'bearer'`.
   * The server never echoes such a value (it selects the other protocol offered). Off unless named.
   */
  protocol?: string | false
  /**
   * Turns the verified payload (after @fastify/jwt's `formatUser`) into the user. `null`, `undefined` or
   * `false` (a deactivated user) answers "User not found". Without it, the payload is the user, as @fastify/jwt's `request.user`.
   */
  loadUser?: (payload: JwtPayload, request: FastifyRequest) => User | null | undefined | false | Promise<User | null | undefined | false>
  /** The `WWW-Authenticate` value (default `Bearer realm="api"`); `false` for none, which makes refusals 403. */
  challenge?: string | false
}

interface JwtRequest {
  jwtVerify?: (options?: { extractToken: () => string }) => Promise<unknown>
  cookies?: Record<string, string | undefined>
  unsignCookie?: (value: string) => { valid: boolean, value: string | null }
  server: { jwt?: { cookie?: { cookieName?: string, signed?: boolean } } }
  query: unknown
  headers: FastifyRequest['headers']
}

/**
 * The token a socket last proved in-band (the `authenticate` action), per upgrade request: re-authentication
 * verifies it rather than the handshake's, which may have expired since.
 */
const refreshedTokens = new WeakMap<FastifyRequest, string>()

const EXPIRED_CODES = new Set(['FST_JWT_AUTHORIZATION_TOKEN_EXPIRED', 'FAST_JWT_EXPIRED'])

/** The `exp` of a token already verified (epoch ms); read from the token, as `formatUser` may drop it. */
function expiryOf (token: string): number | undefined {
  const body = token.split('.')[1]
  if (body === undefined) return undefined
  try {
    const exp = (JSON.parse(Buffer.from(body, 'base64url').toString()) as { exp?: unknown }).exp
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined
  } catch {
    return undefined
  }
}

/** Where the authenticator looks, in its order: header, cookie, query, subprotocol. */
function jwtSources (header: boolean, cookie: JwtAuthenticationOptions['cookie'], query: string | false, protocol: string | false): CredentialSource[] {
  const sources: CredentialSource[] = []
  if (header) sources.push({ in: 'header', name: 'Authorization', scheme: 'Bearer' })
  if (cookie !== false) sources.push(cookie === undefined ? { in: 'cookie' } : { in: 'cookie', name: typeof cookie === 'string' ? cookie : cookie.name })
  if (query !== false) sources.push({ in: 'query', name: query })
  if (protocol !== false) sources.push({ in: 'protocol', prefix: protocol })
  return sources
}

/** Where a token was found; `jwtLookup` means @fastify/jwt's own lookup finds the same token. */
interface FoundToken {
  token: string
  jwtLookup: boolean
}

/**
 * Authenticates by a JWT that @fastify/jwt verifies (its secret, algorithms, `trusted` and `formatUser`
 * apply). Looks in the Authorization header, then the cookie, then the query. Every verification failure
 * is an `AuthenticationFailed`, so a bad token is always 401 (never @fastify/jwt's occasional 500).
 */
export function jwtAuthentication<User = ChanxUser> (options: JwtAuthenticationOptions<User> = {}): Authenticator<User> {
  const header = options.header ?? true
  const query = options.query ?? false
  const protocol = options.protocol ?? false
  if (protocol !== false && (typeof protocol !== 'string' || !/^[A-Za-z0-9_-]+$/.test(protocol))) {
    throw new InvalidOptionError('jwtAuthentication({ protocol }) must be a prefix of letters, digits, "-" or "_", or false')
  }
  // Compared without regard to case: `Bearer.<jwt>` is the same credential as `bearer.<jwt>`.
  const protocolPrefix = protocol === false ? '' : protocol.toLowerCase() + '.'
  const loadUser = options.loadUser
  const challenge = options.challenge ?? 'Bearer realm="api"'
  if (typeof header !== 'boolean') throw new InvalidOptionError('jwtAuthentication({ header }) must be a boolean')
  if (query !== false && (typeof query !== 'string' || query.length === 0)) {
    throw new InvalidOptionError('jwtAuthentication({ query }) must be a parameter name or false')
  }
  const cookieOption = options.cookie
  if (cookieOption !== undefined && cookieOption !== false && typeof cookieOption !== 'string' &&
    (typeof cookieOption !== 'object' || cookieOption === null || typeof cookieOption.name !== 'string')) {
    throw new InvalidOptionError('jwtAuthentication({ cookie }) must be a cookie name, { name, signed } or false')
  }
  if (loadUser !== undefined && typeof loadUser !== 'function') {
    throw new InvalidOptionError('jwtAuthentication({ loadUser }) must be a function (payload, request) => user')
  }
  if (challenge !== false && typeof challenge !== 'string') {
    throw new InvalidOptionError('jwtAuthentication({ challenge }) must be a WWW-Authenticate value or false')
  }

  function cookieConfig (request: JwtRequest): JwtCookieOptions | undefined {
    if (cookieOption === false) return undefined
    if (typeof cookieOption === 'string') return { name: cookieOption }
    if (cookieOption !== undefined) return cookieOption
    const jwtCookie = request.server.jwt?.cookie
    return jwtCookie?.cookieName === undefined ? undefined : { name: jwtCookie.cookieName, signed: jwtCookie.signed }
  }

  function findToken (request: JwtRequest): FoundToken | null {
    const authorization = header ? request.headers.authorization : undefined
    if (authorization !== undefined && /^Bearer(\s|$)/i.test(authorization)) {
      const parts = authorization.split(' ')
      if (parts.length === 1 || parts[1] === '') throw new AuthenticationFailed('Invalid Authorization header. No credentials provided.')
      if (parts.length > 2) throw new AuthenticationFailed('Invalid Authorization header. Credentials string should not contain spaces.')
      return { token: parts[1]!, jwtLookup: true }
    }

    const cookie = cookieConfig(request)
    if (cookie !== undefined) {
      if (request.cookies === undefined) throw new MissingDependencyError('jwtAuthentication({ cookie })', '@fastify/cookie')
      let value = request.cookies[cookie.name]
      if (value !== undefined && value !== '') {
        if (cookie.signed === true) {
          const unsigned = request.unsignCookie!(value)
          if (!unsigned.valid || unsigned.value === null) throw new AuthenticationFailed('Invalid token')
          value = unsigned.value
        }
        const jwtCookie = request.server.jwt?.cookie
        // Only when no Bearer header can be present does @fastify/jwt's lookup reach the same cookie.
        return { token: value, jwtLookup: header && jwtCookie?.cookieName === cookie.name && (jwtCookie.signed === true) === (cookie.signed === true) }
      }
    }

    if (query !== false) {
      const value = (request.query as Record<string, unknown> | undefined)?.[query]
      if (typeof value === 'string' && value !== '') return { token: value, jwtLookup: false }
      if (Array.isArray(value)) throw new AuthenticationFailed('Invalid token')
    }

    const offered = protocol === false ? undefined : request.headers['sec-websocket-protocol']
    if (typeof offered === 'string') {
      for (const value of offered.split(',')) {
        const candidate = value.trim()
        if (candidate.length >= protocolPrefix.length && candidate.slice(0, protocolPrefix.length).toLowerCase() === protocolPrefix) {
          const token = candidate.slice(protocolPrefix.length)
          if (token === '') throw new AuthenticationFailed('Invalid token')
          return { token, jwtLookup: false }
        }
      }
    }
    return null
  }

  const authenticator: Authenticator<User> = {
    async authenticate (fastifyRequest) {
      const request = fastifyRequest as unknown as JwtRequest
      if (typeof request.jwtVerify !== 'function') {
        throw new MissingDependencyError('jwtAuthentication()', '@fastify/jwt')
      }
      const refreshed = refreshedTokens.get(fastifyRequest)
      const found = refreshed === undefined ? findToken(request) : { token: refreshed, jwtLookup: false }
      if (found === null) return null
      return await verify(fastifyRequest, found)
    },
    async refreshToken (fastifyRequest, token) {
      if (typeof token !== 'string' || token === '') throw new AuthenticationFailed('Invalid token')
      const user = await verify(fastifyRequest, { token, jwtLookup: false })
      refreshedTokens.set(fastifyRequest, token)
      return user
    }
  }

  async function verify (fastifyRequest: FastifyRequest, found: FoundToken): Promise<User> {
    const request = fastifyRequest as unknown as JwtRequest
    let payload: unknown
    try {
      // @fastify/jwt's own lookup keeps its cached global verifier; a token from elsewhere is handed over.
      const token = found.token
      payload = found.jwtLookup ? await request.jwtVerify!() : await request.jwtVerify!({ extractToken: () => token })
    } catch (error) {
      const code = (error as { code?: unknown }).code
      fastifyRequest.log.debug({ code }, 'fastify-chanx: JWT verification failed')
      throw new AuthenticationFailed(typeof code === 'string' && EXPIRED_CODES.has(code) ? DETAIL_TOKEN_EXPIRED : 'Invalid token')
    }

    // The verified payload's exp when @fastify/jwt's formatUser kept it; else read from the token.
    const payloadExp = (payload as { exp?: unknown } | null)?.exp
    const exp = typeof payloadExp === 'number' && Number.isFinite(payloadExp) ? payloadExp * 1000 : expiryOf(found.token)
    if (exp !== undefined) setCredentialExpiry(fastifyRequest, exp)
    if (loadUser === undefined) return payload as User
    const user = await loadUser(payload as JwtPayload, fastifyRequest)
    if (user === null || user === undefined || user === false) throw new AuthenticationFailed('User not found')
    return user
  }
  if (challenge !== false) authenticator.challenge = challenge
  // Without a cookie name the cookie @fastify/jwt was given may still be read: assume cookies.
  authenticator.usesCookies = cookieOption !== false
  if (query !== false) authenticator.credentialParams = [query]
  if (protocol !== false) authenticator.credentialProtocols = [protocol]
  authenticator.scheme = { kind: 'jwt', sources: jwtSources(header, cookieOption, query, protocol) }
  return authenticator
}
