import type { FastifyRequest } from 'fastify'
import type { Authenticator } from './authenticator'
import { InvalidOptionError, MissingDependencyError } from '../core/errors'
import type { ChanxUser } from '../core/user-types'

export interface SessionAuthenticationOptions<User = ChanxUser> {
  /** The session key that holds the user's id (default `'userId'`). */
  key?: string
  /**
   * Loads the user from the stored id. `null`/`undefined`/`false` means the user is gone or inactive: the
   * request is anonymous, as DRF's SessionAuthentication. Without it, the stored value itself is the user.
   */
  loadUser?: (id: unknown, request: FastifyRequest) => User | null | undefined | false | Promise<User | null | undefined | false>
}

interface SessionLike {
  get?: (key: string) => unknown
  [key: string]: unknown
}

/**
 * Authenticates by the @fastify/session session, which @fastify/session loads in `onRequest`, before the
 * pipeline runs. No challenge: an anonymous request on a session-only route is answered 403, as DRF.
 */
export function sessionAuthentication<User = ChanxUser> (options: SessionAuthenticationOptions<User> = {}): Authenticator<User> {
  const key = options.key ?? 'userId'
  const loadUser = options.loadUser
  if (typeof key !== 'string' || key.length === 0) {
    throw new InvalidOptionError('sessionAuthentication({ key }) must be a non-empty string')
  }
  if (loadUser !== undefined && typeof loadUser !== 'function') {
    throw new InvalidOptionError('sessionAuthentication({ loadUser }) must be a function (id, request) => user')
  }

  return {
    usesCookies: true,
    // @fastify/session's cookie, whatever its cookieName.
    scheme: { kind: 'session cookie', sources: [{ in: 'cookie' }] },
    async refresh (request) {
      const session = (request as unknown as { session?: { reload?: () => Promise<void> } | null }).session
      if (typeof session?.reload === 'function') await session.reload()
    },
    async authenticate (request) {
      const session = (request as unknown as { session?: SessionLike }).session
      if (session === undefined || session === null) {
        throw new MissingDependencyError('sessionAuthentication()', '@fastify/session')
      }
      const id = typeof session.get === 'function' ? session.get(key) : session[key]
      // `false` is no user either (a deactivated user's loadUser; a flag stored under the key).
      if (id === undefined || id === null || id === false) return null
      if (loadUser === undefined) return id as User
      const user = await loadUser(id, request)
      return user === false ? null : user
    }
  }
}
