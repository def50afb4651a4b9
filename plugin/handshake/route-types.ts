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
import type { RateLimit } from '../messages/router'
import type { ChanxMessageRouteOptions } from '../messages/router'

/**
 * Declare your user and object types once, and `request.user` / `request.obj` carry them in every handler:
 *
 *     declare module 'fastify-chanx' {
 *       interface ChanxTypes { user: User; obj: Room }
 *     }
 *
 * If you also use @fastify/jwt, declare the same `user` type in its `FastifyJWT` interface: both plugins
 * type `request.user`, and TypeScript needs them to agree.
 */
export interface ChanxTypes {}

/** The user type: `ChanxTypes['user']` when declared, else @fastify/jwt's default payload type. */
export type ChanxUser = ChanxTypes extends { user: infer User } ? User : string | object | Buffer

/** The object type: `ChanxTypes['obj']` when declared, else `unknown`. */
export type ChanxObject = ChanxTypes extends { obj: infer Obj } ? Obj : unknown

/** Loads the object the URL names; `null` or `undefined` answers 404. */
export type ObjectLoader<Obj = ChanxObject, Request = FastifyRequest> =
  (request: Request) => Obj | null | undefined | Promise<Obj | null | undefined>

/** What `groups(ctx)` gets: who connected, to what. It runs in the handshake, before the socket opens. */
export interface GroupContext<User = ChanxUser, Obj = ChanxObject, Params = unknown> {
  readonly user: User
  readonly obj: Obj
  readonly params: Params
  readonly request: FastifyRequest
}

/** The options every route accepts, and the plugin accepts as defaults. */
export interface ChanxRouteOptions<Request = FastifyRequest> {
  /** Ordered authenticators; the first that returns a user wins. */
  authentication?: readonly Authenticator<unknown>[]
  /** Every permission must allow the request (and then the object). */
  permissions?: readonly Permission[]
  /** Loads `request.obj` from the URL; `null` answers 404. */
  objectLoader?: ObjectLoader<unknown, Request>
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
  /** This route's message rate limit (routes with `messages`); see the plugin option. */
  rateLimit?: RateLimit | false
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
    // eslint-disable-next-line @typescript-eslint/no-unused-vars
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
    ContextConfig = ContextConfigDefault,
    SchemaCompiler extends FastifySchema = FastifySchema,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger
  > extends ChanxRouteOptions<FastifyRequest<RouteGeneric, RawServer, RawRequest, SchemaCompiler, TypeProvider, ContextConfig, Logger>>,
    ChanxMessageRouteOptions {}
}
