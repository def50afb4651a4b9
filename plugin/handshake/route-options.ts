import type { RouteOptions } from 'fastify'
import type {} from '@fastify/websocket'
import { ChanxAuthenticator, type AuthenticatorClass } from '../auth/authenticator'
import { checksObjects, type Permission } from '../auth/permissions'
import { createInBandRefresh } from '../connection/credential-lifetime'
import { InvalidOptionError } from '../core/errors'
import { HANDSHAKE_ROUTE_OPTIONS } from './route-types'
import { MESSAGE_ROUTE_OPTIONS } from '../messages/types'
import type { GroupContext, ObjectLoader } from '../core/user-types'
import { checkBoolean, checkCount, checkInterval, nearMiss } from '../core/validate'
import { compileRouter, type MessageRouter } from '../messages/compile'
import { createOriginCheck, checkAllowedOrigins, type OriginCheck } from './origin'
import { checkAuthentication, checkAuthenticatorClass, checkPermissions, checkRateLimit, type ResolvedDefaults } from './plugin-options'
import { RESUME_PARAM } from '../connection/resume'

/** What the handshake needs of one route, fixed at registration. */
export interface RouteHandshake {
  readonly authenticator: ChanxAuthenticator<unknown, unknown>
  readonly websocket: boolean
  readonly sendAuthenticationMessage: boolean
  readonly rejectUpgrade: boolean
  /** Refuses cross-site handshakes; `null` when the route checks no origin. */
  readonly originCheck: OriginCheck | null
  /** Query parameters that carry credentials on this route, redacted from its log lines. */
  readonly credentialParams: ReadonlySet<string>
  readonly reauthenticateInterval: number
  /**
   * How long one re-authentication may take: the plugin's `handshakeTimeout`, or, when that is off, the
   * route's `reauthenticateInterval`. Past it the socket is closed with 4503.
   */
  readonly reauthenticateTimeout: number
  /** Frames of one socket that may wait for an earlier handler (0: no cap). */
  readonly maxQueuedFrames: number
  /** Bytes those frames may hold together (0: no cap). */
  readonly maxQueuedBytes: number
  /** Prefixes of subprotocol values that carry this route's credentials. */
  readonly credentialProtocols: readonly string[]
  /** Routes the frames of accepted sockets; `null` when the route declares no `messages`. */
  readonly router: MessageRouter | null
  /** The groups a socket joins in the handshake. */
  readonly groups: ((ctx: GroupContext) => readonly string[] | Promise<readonly string[]>) | undefined
  /**
   * The `HEAD` twin of a socket route (Fastify's `exposeHeadRoutes`, or a `HEAD` route with a `wsHandler`):
   * it runs the pipeline as an HTTP route, and its log lines are redacted like the socket's.
   */
  readonly headTwin: boolean
  /** Positions, recovery token and replay on resume (docs/recovery.md). */
  readonly history: boolean
}

/** Every route option fastify-chanx reads; setting any of them opts an HTTP route in. */
export const ROUTE_OPTIONS: ReadonlySet<string> = new Set([...HANDSHAKE_ROUTE_OPTIONS, ...MESSAGE_ROUTE_OPTIONS])

/** Fastify's own route options (and @fastify/websocket's): never reported as near misses of ours. */
const FASTIFY_ROUTE_OPTIONS: ReadonlySet<string> = new Set([
  'method', 'url', 'path', 'handler', 'schema', 'config', 'constraints', 'version', 'logLevel', 'logSerializers',
  'bodyLimit', 'attachValidation', 'errorHandler', 'childLoggerFactory', 'schemaErrorFormatter', 'validatorCompiler',
  'serializerCompiler', 'exposeHeadRoute', 'prefixTrailingSlash', 'routePath', 'prefix', 'handlerTimeout',
  'onRequest', 'preParsing', 'preValidation', 'preHandler', 'preSerialization', 'onSend', 'onResponse', 'onTimeout',
  'onError', 'onRequestAbort', 'websocket', 'wsHandler'
])

/** A route key that is not ours but nearly is (`permision`, `objectloader`) fails: the option would be ignored. */
function checkNearMisses (route: RouteOptions, where: string): void {
  for (const key of Object.keys(route)) {
    if (ROUTE_OPTIONS.has(key) || FASTIFY_ROUTE_OPTIONS.has(key)) continue
    const close = nearMiss(key, ROUTE_OPTIONS)
    if (close !== undefined) {
      throw new InvalidOptionError(`${where} unknown route option "${key}"; did you mean "${close}"? (it would be ignored, and the route left unguarded)`)
    }
  }
}

/** Whether the route sets any option of ours. */
function optsIn (route: RouteOptions): boolean {
  const options = route as unknown as Record<string, unknown>
  for (const key of ROUTE_OPTIONS) if (options[key] !== undefined) return true
  return false
}

/**
 * An object permission with no object to check would never run: DRF lets that pass silently (every
 * object is allowed); here it fails at registration. A class that overrides `loadObject` loads its own.
 */
function checkObjectPermissions (
  permissions: readonly Permission<any>[],
  fromDefaults: boolean,
  hasLoader: boolean,
  AuthenticatorType: AuthenticatorClass,
  where: string
): void {
  const loadsItsOwn = (AuthenticatorType.prototype as unknown as { loadObject: unknown }).loadObject !==
    (ChanxAuthenticator.prototype as unknown as { loadObject: unknown }).loadObject
  if (hasLoader || loadsItsOwn) return
  const i = permissions.findIndex(checksObjects)
  if (i === -1) return
  const source = fromDefaults ? `the plugin's default permissions[${i}]` : `permissions[${i}]`
  throw new InvalidOptionError(`${where} ${source} checks objects (hasObjectPermission) but the route has no objectLoader, ` +
    'so it would allow every request; add an objectLoader or remove the object permission')
}

function checkGroupsOption (value: unknown, websocket: boolean, where: string): RouteHandshake['groups'] {
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw new InvalidOptionError(`${where} groups must be a function (ctx) => group names`)
  if (!websocket) throw new InvalidOptionError(`${where} groups are only for WebSocket routes (websocket: true)`)
  return value as RouteHandshake['groups']
}

function checkObjectName (value: unknown, where: string, route: RouteOptions): string | undefined {
  if (value === undefined) return undefined
  if (route.objectLoader === undefined && route.authenticatorClass === undefined) throw new InvalidOptionError(`${where} needs objectLoader`)
  if (typeof value !== 'string' || value === '') throw new InvalidOptionError(`${where} must be a non-empty string (the object's name in "No Room matches the given query.")`)
  return value
}

/** Resolves a route's options against the plugin's defaults; `null` when the route does not use the plugin. */
export function resolveRoute (route: RouteOptions, defaults: ResolvedDefaults): RouteHandshake | null {
  const where = `route ${String(route.method)} ${route.url}:`
  checkNearMisses(route, where)
  const methods = Array.isArray(route.method) ? route.method : [route.method]
  const socketRoute = route.websocket === true || typeof (route as { wsHandler?: unknown }).wsHandler === 'function'
  // A HEAD request cannot be upgraded: the HEAD twin of a socket route is an HTTP route (serving the
  // `handler` of a `handler` + `wsHandler` route), guarded by the same pipeline.
  const headTwin = socketRoute && methods.every((method) => method === 'HEAD')
  const websocket = socketRoute && !headTwin
  if (!socketRoute && !optsIn(route) && defaults.httpRoutes === 'opt-in') return null

  if (route.objectLoader !== undefined && typeof route.objectLoader !== 'function') {
    throw new InvalidOptionError(`${where} objectLoader must be a function (request) => object | null`)
  }
  const AuthenticatorType = route.authenticatorClass === undefined
    ? defaults.authenticatorClass
    : checkAuthenticatorClass(route.authenticatorClass, `${where} authenticatorClass`)
  const authentication = route.authentication === undefined
    ? defaults.authentication
    : checkAuthentication(route.authentication, `${where} authentication`)
  const allowedOrigins = route.allowedOrigins === undefined
    ? defaults.allowedOrigins
    : checkAllowedOrigins(route.allowedOrigins, `${where} allowedOrigins`)
  const credentialParams = new Set(['token', ...defaults.redactQueryParams])
  for (const authenticator of authentication) {
    for (const name of authenticator.credentialParams ?? []) credentialParams.add(name)
  }
  const sendAuthenticationMessage = route.sendAuthenticationMessage === undefined
    ? defaults.sendAuthenticationMessage
    : checkBoolean(route.sendAuthenticationMessage, `${where} sendAuthenticationMessage`)
  const history = websocket && (route.history === undefined ? defaults.history !== null : checkBoolean(route.history, `${where} history`))
  if (history && !sendAuthenticationMessage) {
    throw new InvalidOptionError(`${where} history needs sendAuthenticationMessage: the authentication message carries the recovery token and positions`)
  }
  // The HEAD twin has no history of its own but logs the same URL: redact as its socket route does,
  // whether history comes from the plugin or from the route itself (the twin carries the route's options).
  if (history || (socketRoute && (defaults.history !== null || route.history === true))) credentialParams.add(RESUME_PARAM)
  const permissions = route.permissions === undefined ? defaults.permissions : checkPermissions(route.permissions, `${where} permissions`)
  checkObjectPermissions(permissions, route.permissions === undefined, route.objectLoader !== undefined, AuthenticatorType, where)
  const authenticator = new AuthenticatorType({
    authentication,
    permissions,
    objectLoader: route.objectLoader as ObjectLoader<unknown, any> | undefined,
    objectName: checkObjectName(route.objectName, `${where} objectName`, route)
  })
  const reauthenticateInterval = route.reauthenticateInterval === undefined
    ? defaults.reauthenticateInterval
    : checkInterval(route.reauthenticateInterval, `${where} reauthenticateInterval`)
  return {
    authenticator,
    websocket,
    sendAuthenticationMessage,
    rejectUpgrade: route.rejectUpgrade === undefined ? defaults.rejectUpgrade : checkBoolean(route.rejectUpgrade, `${where} rejectUpgrade`),
    originCheck: websocket ? createOriginCheck(allowedOrigins, authentication.some((a) => a.usesCookies === true)) : null,
    credentialParams,
    credentialProtocols: authentication.flatMap((a) => a.credentialProtocols ?? []),
    // The twin's socket-only options were checked on the socket route itself.
    groups: headTwin ? undefined : checkGroupsOption(route.groups, websocket, where),
    router: headTwin
      ? null
      : compileRouter(route, where, websocket, {
        rateLimit: checkRateLimit(route.rateLimit, defaults.rateLimit, `${where} rateLimit`),
        refreshCredentials: createInBandRefresh(authentication, defaults.userKey),
        strict: defaults.strict
      }),
    headTwin,
    history,
    maxQueuedFrames: checkCount(route.maxQueuedFrames, defaults.maxQueuedFrames, `${where} maxQueuedFrames`),
    maxQueuedBytes: checkCount(route.maxQueuedBytes, defaults.maxQueuedBytes, `${where} maxQueuedBytes`),
    reauthenticateInterval,
    reauthenticateTimeout: defaults.handshakeTimeout > 0 ? defaults.handshakeTimeout : reauthenticateInterval
  }
}
