import type { RouteOptions } from 'fastify'
import type {} from '@fastify/websocket'
import type { ChanxAuthenticator } from '../auth/authenticator'
import { createInBandRefresh } from '../connection/credential-lifetime'
import { InvalidOptionError } from '../core/errors'
import type { GroupContext, ObjectLoader } from '../core/user-types'
import { checkBoolean, checkInterval } from '../core/validate'
import { compileRouter, type MessageRouter } from '../messages/compile'
import { createOriginCheck, checkAllowedOrigins, type OriginCheck } from './origin'
import { checkAuthentication, checkAuthenticatorClass, checkPermissions, checkRateLimit, type ResolvedDefaults } from './plugin-options'

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
  /** Prefixes of subprotocol values that carry this route's credentials. */
  readonly credentialProtocols: readonly string[]
  /** Routes the frames of accepted sockets; `null` when the route declares no `messages`. */
  readonly router: MessageRouter | null
  /** The groups a socket joins in the handshake. */
  readonly groups: ((ctx: GroupContext) => readonly string[] | Promise<readonly string[]>) | undefined
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
  const methods = Array.isArray(route.method) ? route.method : [route.method]
  const websocket = route.websocket === true || typeof (route as { wsHandler?: unknown }).wsHandler === 'function'
  // @fastify/websocket answers HEAD on a socket route with 404 itself: nothing to guard there.
  if (websocket && methods.every((method) => method === 'HEAD')) return null
  const optedIn = route.authentication !== undefined || route.permissions !== undefined ||
    route.objectLoader !== undefined || route.authenticatorClass !== undefined
  if (!websocket && !optedIn && defaults.httpRoutes === 'opt-in') return null

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
  const authenticator = new AuthenticatorType({
    authentication,
    permissions: route.permissions === undefined ? defaults.permissions : checkPermissions(route.permissions, `${where} permissions`),
    objectLoader: route.objectLoader as ObjectLoader<unknown, any> | undefined,
    objectName: checkObjectName(route.objectName, `${where} objectName`, route)
  })
  return {
    authenticator,
    websocket,
    sendAuthenticationMessage,
    rejectUpgrade: route.rejectUpgrade === undefined ? defaults.rejectUpgrade : checkBoolean(route.rejectUpgrade, `${where} rejectUpgrade`),
    originCheck: websocket ? createOriginCheck(allowedOrigins, authentication.some((a) => a.usesCookies === true)) : null,
    credentialParams,
    credentialProtocols: authentication.flatMap((a) => a.credentialProtocols ?? []),
    groups: checkGroupsOption(route.groups, websocket, where),
    router: compileRouter(route, where, websocket, {
      rateLimit: checkRateLimit(route.rateLimit, defaults.rateLimit, `${where} rateLimit`),
      refreshCredentials: createInBandRefresh(authentication, defaults.userKey, sendAuthenticationMessage),
      strict: defaults.strict
    }),
    reauthenticateInterval: route.reauthenticateInterval === undefined
      ? defaults.reauthenticateInterval
      : checkInterval(route.reauthenticateInterval, `${where} reauthenticateInterval`)
  }
}
