import type {
  ContextConfigDefault,
  FastifyBaseLogger,
  FastifyRequest,
  FastifySchema,
  FastifyTypeProvider,
  FastifyTypeProviderDefault,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerBase,
  RawServerDefault,
  RouteGenericInterface
} from 'fastify'
import type { Authenticator, AuthenticatorClass } from '../auth/authenticator'
import type { AllowedOrigins } from './origin'
import type { Permission } from '../auth/permissions'
import type { ChanxObject, ChanxUser, GroupContext, ObjectLoader } from '../core/user-types'
import type { ChanxMessageRouteOptions, RateLimit } from '../messages/types'

/** The options every route accepts, and the plugin accepts as defaults. */
export interface ChanxRouteOptions<Request = FastifyRequest> {
  /** Ordered authenticators; the first that returns a user wins. */
  authentication?: readonly Authenticator<unknown>[]
  /** Every permission must allow the request (and then the object). */
  permissions?: readonly Permission[]
  /** Loads `request.obj` from the URL; `null` answers 404. */
  objectLoader?: ObjectLoader<unknown, Request>
  /** What the object is called: a missing one answers `No <objectName> matches the given query.` (Django's 404). */
  objectName?: string
  /** A class extending `ChanxAuthenticator` that replaces or wraps the standard pipeline. */
  authenticatorClass?: AuthenticatorClass
  /** Send the `authentication` message to sockets (default true). */
  sendAuthenticationMessage?: boolean
  /** Refuse a socket with the HTTP status of the upgrade response instead of a message and close code (default false). */
  rejectUpgrade?: boolean
  /** Origins that may open this socket; see the plugin option. */
  allowedOrigins?: AllowedOrigins
  /** Re-run the pipeline on an open socket every this many ms (0: never); see the plugin option. */
  reauthenticateInterval?: number
  /**
   * The groups a socket joins (the seed's `build_groups`). They are joined before the authentication
   * message goes out, and left when the socket closes, however it closes.
   */
  groups?: (ctx: GroupContext) => readonly string[] | Promise<readonly string[]>
  /** Frames of one socket that may wait for an earlier handler (routes with `messages`); see the plugin option. */
  maxQueuedFrames?: number
  /** Bytes the frames waiting for an earlier handler may hold together (routes with `messages`); see the plugin option. */
  maxQueuedBytes?: number
  /** This route's message rate limit (routes with `messages`); see the plugin option. */
  rateLimit?: RateLimit | false
  /**
   * Recoverable history for this route's sockets (docs/recovery.md): positions on broadcasts, a recovery
   * token, and a replay of missed messages on resume. Default: on when the plugin's `history` is set.
   */
  history?: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated user, or null for an anonymous request (set by fastify-chanx or @fastify/jwt). */
    user: ChanxUser
    /** The object the route's `objectLoader` loaded, or null. */
    obj: ChanxObject
  }

  // The type parameters must repeat Fastify's own declaration.
  interface RouteShorthandOptions<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    // eslint-disable-next-line @typescript-eslint/no-unused-vars
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
    ContextConfig = ContextConfigDefault,
    SchemaCompiler extends FastifySchema = FastifySchema,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger
  > extends ChanxRouteOptions<FastifyRequest<RouteGeneric, RawServer, RawRequest, SchemaCompiler, TypeProvider, ContextConfig, Logger>>,
    ChanxMessageRouteOptions {}
}

/**
 * Every key of `ChanxRouteOptions`, checked by the compiler against the interface: an option added there and
 * not here (or here and not there) fails to build, so the near-miss check and the HTTP opt-in never miss one.
 */
export const HANDSHAKE_ROUTE_OPTIONS: readonly string[] = Object.keys({
  authentication: true,
  permissions: true,
  objectLoader: true,
  objectName: true,
  authenticatorClass: true,
  sendAuthenticationMessage: true,
  rejectUpgrade: true,
  allowedOrigins: true,
  reauthenticateInterval: true,
  groups: true,
  maxQueuedFrames: true,
  maxQueuedBytes: true,
  rateLimit: true,
  history: true
} satisfies Record<keyof ChanxRouteOptions, true>)
