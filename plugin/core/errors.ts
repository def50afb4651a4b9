import createError from '@fastify/error'
import { DETAIL_NOT_AUTHENTICATED, DETAIL_NOT_FOUND, DETAIL_PERMISSION_DENIED } from './wire'

/**
 * Errors an authenticator, a permission or an object loader throws to refuse a request, as Django REST
 * Framework's exceptions do. The handshake pipeline turns them into the status and `{detail}` the client
 * sees; anything else thrown there becomes a 500 whose text reveals nothing.
 */
export abstract class ChanxRefusal extends Error {
  abstract readonly code: string
  /**
   * The HTTP status, as @fastify/jwt's errors carry theirs: thrown from a plain handler, Fastify's error
   * handler answers it with the detail as message. The handshake pipeline decides 401/403 itself (DRF).
   */
  abstract readonly statusCode: number
  readonly detail: string

  constructor (detail: string) {
    super(detail)
    this.detail = detail
  }
}

/**
 * Credentials were present but bad. In the pipeline: 401 when the route's first authenticator has a
 * challenge, else 403; thrown from a handler: 401.
 */
export class AuthenticationFailed extends ChanxRefusal {
  readonly code = 'FST_CHANX_AUTHENTICATION_FAILED'
  readonly statusCode: number = 401
  constructor (detail = 'Incorrect authentication credentials.') {
    super(detail)
    this.name = 'AuthenticationFailed'
  }
}

/** No credentials at all. In the pipeline: 401 with a challenge, else 403; thrown from a handler: 401. */
export class NotAuthenticated extends ChanxRefusal {
  readonly code = 'FST_CHANX_NOT_AUTHENTICATED'
  readonly statusCode: number = 401
  constructor (detail = DETAIL_NOT_AUTHENTICATED) {
    super(detail)
    this.name = 'NotAuthenticated'
  }
}

/** The user is known but may not do this: 403. */
export class PermissionDenied extends ChanxRefusal {
  readonly code = 'FST_CHANX_PERMISSION_DENIED'
  readonly statusCode: number = 403
  constructor (detail = DETAIL_PERMISSION_DENIED) {
    super(detail)
    this.name = 'PermissionDenied'
  }
}

/** The object the URL names does not exist (or must not be revealed): 404. */
export class NotFound extends ChanxRefusal {
  readonly code = 'FST_CHANX_NOT_FOUND'
  readonly statusCode: number = 404
  constructor (detail = DETAIL_NOT_FOUND) {
    super(detail)
    this.name = 'NotFound'
  }
}

/** A plugin or route option has the wrong shape; thrown at registration, never per request. */
export const InvalidOptionError = createError<[string]>('FST_CHANX_INVALID_OPTION', 'fastify-chanx: %s', 500, TypeError)

/** @fastify/websocket must be registered before fastify-chanx. */
export const MissingWebsocketError = createError(
  'FST_CHANX_MISSING_WEBSOCKET',
  'fastify-chanx: register @fastify/websocket before fastify-chanx',
  500
)

/** A built-in authenticator needs a plugin that is not registered (@fastify/session, @fastify/jwt, @fastify/cookie). */
export const MissingDependencyError = createError<[string, string]>(
  'FST_CHANX_MISSING_DEPENDENCY',
  'fastify-chanx: %s needs %s to be registered before the route is requested',
  500
)

/** An authenticator (or its `loadUser`) resolved to a value that cannot be a user: answered 500, logged. */
export const InvalidUserError = createError<[string]>(
  'FST_CHANX_INVALID_USER',
  'fastify-chanx: an authenticator returned %s, which cannot be a user; return the user, or null, undefined or false for none',
  500
)

/**
 * A request reached a route that fastify-chanx never saw declared (declared before the plugin was
 * registered and awaited, or in a context the plugin does not cover): its options were never applied, so
 * it is refused rather than served unguarded.
 */
export const UnseenRouteError = createError<[string]>(
  'FST_CHANX_UNSEEN_ROUTE',
  'fastify-chanx: %s was declared where fastify-chanx did not see it, so its authentication and permissions were never applied; ' +
    'register fastify-chanx with `await app.register(chanx)` before declaring routes, in the same context or a parent of it',
  500
)

/**
 * A canary found that a dependency no longer behaves as one of fastify-chanx's reach-ins into its private
 * parts assumes (core/ws-internals.ts, channels/redis/ioredis-internals.ts): thrown at registration, or
 * logged once at the first upgrade for @fastify/websocket's, rather than misbehaving silently.
 */
export const DependencyChangedError = createError<[string, string, string]>(
  'FST_CHANX_DEPENDENCY_CHANGED',
  'fastify-chanx: %s %s no longer behaves as fastify-chanx relies on: %s. Install a version within fastify-chanx\'s ' +
    'supported range (README, Compatibility), or report it',
  500
)

/**
 * A broadcast from a handler (`ctx.broadcast`) on a route with `validateOutgoing: true` that does not match
 * the route's `outgoing` schemas: its promise rejects with this and nobody receives it.
 */
export const OutgoingInvalidError = createError<[string]>(
  'FST_CHANX_OUTGOING_INVALID',
  'fastify-chanx: the broadcast %s does not match the route\'s outgoing schemas (validateOutgoing); not delivered',
  500
)
