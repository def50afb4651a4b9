import type {} from '@fastify/websocket'
import { ChanxAuthenticator, type Authenticator, type AuthenticatorClass } from '../auth/authenticator'
import { AllowAny, assertPermission, type Permission } from '../auth/permissions'
import type { ChannelOptions } from '../channels/options'
import type { ConnectionLimits } from '../connection/guard'
import { InvalidOptionError } from '../core/errors'
import { resolveResumeBudget, type ResumeBudgetOptions } from '../connection/resume-budget'
import { defaultUserKey, type UserKeyFunction } from '../core/identity'
import type { ChanxUser } from '../core/user-types'
import { checkBoolean, checkCount, checkInterval, checkNames, nearMiss } from '../core/validate'
import type { RateLimit } from '../messages/types'
import { checkAllowedOrigins, type AllowedOrigins } from './origin'
import { resolveHistoryOption, type HistoryLimits } from '../channels/history/model'

/**
 * Plugin options that set defaults for every route that sets none (DRF's DEFAULT_* settings), and the
 * channels. The public `FastifyChanxOptions` (plugin/options.ts) adds what the plugin serves (asyncapi, playground).
 */
export interface PluginDefaultOptions extends ChannelOptions {
  /** Default authenticators (default: none, so requests are anonymous unless a route authenticates). */
  authentication?: readonly Authenticator<unknown>[]
  /** Default permissions (default: `[AllowAny]`). */
  permissions?: readonly Permission[]
  /** Default pipeline class for every route (the seed's `authenticator_class`). */
  authenticatorClass?: AuthenticatorClass
  /** Send the `authentication` message on connect (default true). */
  sendAuthenticationMessage?: boolean
  /** Refuse sockets with the upgrade's HTTP status instead of a message and close code (default false). */
  rejectUpgrade?: boolean
  /**
   * Which plain HTTP routes run the pipeline: `'opt-in'` (default) only those that set `authentication`,
   * `permissions`, `objectLoader` or `authenticatorClass`; `'all'` every route, as DRF's defaults apply to
   * every view. WebSocket routes always run it.
   */
  httpRoutes?: 'opt-in' | 'all'
  /**
   * Origins that may open a socket (a list, `'*'`, or a function). Unset: a route that authenticates by
   * cookie accepts only same-origin handshakes (and handshakes without `Origin`); other routes any.
   */
  allowedOrigins?: AllowedOrigins
  /**
   * Re-run each socket's pipeline every this many milliseconds on its handshake credentials (default 0:
   * never), so a destroyed session or a deactivated user closes the socket. A re-run still pending after
   * `handshakeTimeout` (or, when that is 0, after this interval) closes the socket with 4503.
   */
  reauthenticateInterval?: number
  /** Ping sockets this often and drop those that stop answering (ms; default 30000; 0: off). */
  heartbeatInterval?: number
  /** Close sockets that sent nothing for this long (ms; default 0: off). */
  idleTimeout?: number
  /** Close a slow reader (1013) whose unsent output passes this many bytes (default 1 MiB; 0: off). */
  maxBufferedBytes?: number
  /**
   * Frames of one socket that may wait for an earlier handler (default 100; 0: no cap). One more closes the
   * socket with 1008 "Too many pending messages".
   */
  maxQueuedFrames?: number
  /**
   * Bytes the frames waiting for an earlier handler may hold together (default 1 MiB, like
   * `maxBufferedBytes`; 0: no cap). A frame that would pass it closes the socket with 1008
   * "Too many pending message bytes".
   */
  maxQueuedBytes?: number
  /**
   * On `app.close()`: how long in-flight handlers may run on before every socket is closed with 1012
   * "Server restarting" (ms; default 5000; 0: close at once). New handshakes are refused meanwhile (503 / 4503).
   */
  closeGracePeriod?: number
  /**
   * Longest time the handshake (origin check, authenticators, permissions, object loader, `groups`) may
   * take (ms; default 10000; 0: off). Past it the request is answered 503 / the socket closed 4503
   * "Handshake timed out"; a pipeline that settles later admits nothing.
   */
  handshakeTimeout?: number
  /**
   * Reconnections that carry a resume (docs/recovery.md), per user and per client IP in this process: token
   * buckets, default `{ perUser: { resumesPerSecond: 1, burst: 10 }, perIp: { resumesPerSecond: 10, burst: 100 } }`;
   * `false` turns one or both off. Past it the handshake is refused 429 / 4429 before any history read.
   */
  resumeBudget?: ResumeBudgetOptions | false
  /** Concurrent sockets per user in this process (default 0: no limit); more are refused 429 / 4429. */
  maxConnectionsPerUser?: number
  /** Concurrent sockets per client IP in this process (default 0: no limit; set `trustProxy` behind a proxy). */
  maxConnectionsPerIp?: number
  /**
   * Frames per second each socket of a route with `messages` may send (default `{ messagesPerSecond: 100,
   * burst: 200 }`; `false`: no limit). Over it a frame is answered `Rate limit exceeded` and dropped; a
   * socket that keeps going is closed with 1008.
   */
  rateLimit?: RateLimit | false
  /** Validate frames strictly, without pydantic's lax conversions (`"5"` for an integer); default false. Routes may override. */
  strict?: boolean
  /**
   * The stable identity of a user (default: the user if a string or number, else its id, sub or username),
   * typed by the user you declared (`ChanxTypes`). Never called for an anonymous user (null or undefined).
   */
  userKey?: (user: NonNullable<ChanxUser>) => string | null | undefined
  /** More query parameters to redact from socket routes' log lines, besides `token` and the authenticators' own. */
  redactQueryParams?: readonly string[]
  /**
   * Keep recoverable history of every group and user stream (docs/recovery.md): `true` (1,000 messages,
   * 120 s per stream) or `{ size, maxAge, metaTtl }` (messages, ms, ms). Off unless set; routes may opt out or in.
   */
  history?: boolean | { size?: number, maxAge?: number, metaTtl?: number }
}

export interface ResolvedDefaults {
  authentication: readonly Authenticator<unknown>[]
  permissions: readonly Permission<any>[]
  authenticatorClass: AuthenticatorClass
  sendAuthenticationMessage: boolean
  rejectUpgrade: boolean
  httpRoutes: 'opt-in' | 'all'
  allowedOrigins: AllowedOrigins | undefined
  redactQueryParams: readonly string[]
  reauthenticateInterval: number
  maxQueuedFrames: number
  maxQueuedBytes: number
  closeGracePeriod: number
  handshakeTimeout: number
  limits: ConnectionLimits
  userKey: UserKeyFunction
  rateLimit: RateLimit | null
  strict: boolean
  history: HistoryLimits | null
}

/**
 * Every plugin option, checked by the compiler against `PluginDefaultOptions` and the two options of the
 * served documents (checked by asyncapi/options.ts): adding one there without here fails to build.
 */
const PLUGIN_OPTIONS: ReadonlySet<string> = new Set(Object.keys({
  authentication: true,
  permissions: true,
  authenticatorClass: true,
  sendAuthenticationMessage: true,
  rejectUpgrade: true,
  httpRoutes: true,
  allowedOrigins: true,
  redactQueryParams: true,
  reauthenticateInterval: true,
  heartbeatInterval: true,
  idleTimeout: true,
  maxBufferedBytes: true,
  maxQueuedFrames: true,
  maxQueuedBytes: true,
  closeGracePeriod: true,
  handshakeTimeout: true,
  maxConnectionsPerUser: true,
  maxConnectionsPerIp: true,
  resumeBudget: true,
  userKey: true,
  channelLayer: true,
  redis: true,
  channelSecret: true,
  presence: true,
  rateLimit: true,
  strict: true,
  asyncapi: true,
  playground: true,
  history: true
} satisfies Record<keyof PluginDefaultOptions | 'asyncapi' | 'playground', true>))

export const DEFAULT_MAX_QUEUED_FRAMES = 100
export const DEFAULT_MAX_QUEUED_BYTES = 1024 * 1024
export const DEFAULT_CLOSE_GRACE_PERIOD = 5000
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000

const DEFAULT_RATE_LIMIT: RateLimit = { messagesPerSecond: 100, burst: 200 }

export function checkRateLimit (value: unknown, fallback: RateLimit | null, where: string): RateLimit | null {
  if (value === undefined) return fallback
  if (value === false) return null
  const limit = value as Partial<RateLimit> | null
  if (limit === null || typeof limit !== 'object' ||
    typeof limit.messagesPerSecond !== 'number' || !(limit.messagesPerSecond > 0) ||
    typeof limit.burst !== 'number' || !Number.isInteger(limit.burst) || limit.burst < 1) {
    throw new InvalidOptionError(`${where} must be { messagesPerSecond: number > 0, burst: whole number >= 1 } or false`)
  }
  return { messagesPerSecond: limit.messagesPerSecond, burst: limit.burst }
}

export function checkAuthentication (value: unknown, where: string): readonly Authenticator<unknown>[] {
  if (!Array.isArray(value)) throw new InvalidOptionError(`${where} must be an array of authenticators`)
  value.forEach((authenticator: (Partial<Authenticator<unknown>> & Partial<Permission>) | null, i) => {
    if (authenticator !== null && typeof authenticator === 'object' && typeof authenticator.authenticate !== 'function' &&
      (typeof authenticator.hasPermission === 'function' || typeof authenticator.hasObjectPermission === 'function')) {
      throw new InvalidOptionError(`${where}[${i}] is a permission (it has hasPermission/hasObjectPermission): put it in permissions, not in authentication`)
    }
    if (authenticator === null || typeof authenticator !== 'object' || typeof authenticator.authenticate !== 'function') {
      throw new InvalidOptionError(`${where}[${i}] must be an object with authenticate(request)`)
    }
    if (authenticator.challenge !== undefined && typeof authenticator.challenge !== 'string') {
      throw new InvalidOptionError(`${where}[${i}].challenge must be a WWW-Authenticate string`)
    }
  })
  return value
}

export function checkPermissions (value: unknown, where: string): readonly Permission<any>[] {
  if (!Array.isArray(value)) throw new InvalidOptionError(`${where} must be an array of permissions`)
  value.forEach((permission, i) => assertPermission(permission, `${where}[${i}]`))
  return value
}

export function checkAuthenticatorClass (value: unknown, where: string): AuthenticatorClass {
  if (typeof value !== 'function' || !(value.prototype instanceof ChanxAuthenticator || value === ChanxAuthenticator)) {
    throw new InvalidOptionError(`${where} must be a class that extends ChanxAuthenticator`)
  }
  return value as AuthenticatorClass
}

function checkUserKey (value: unknown): UserKeyFunction {
  if (value === undefined) return defaultUserKey
  if (typeof value !== 'function') throw new InvalidOptionError('option userKey must be a function (user) => string | null')
  return value as UserKeyFunction
}

export function resolvePluginOptions (options: PluginDefaultOptions): ResolvedDefaults {
  if (options === null || typeof options !== 'object') throw new InvalidOptionError('options must be an object')
  for (const key of Object.keys(options)) {
    if (!PLUGIN_OPTIONS.has(key)) {
      const close = nearMiss(key, PLUGIN_OPTIONS)
      const hint = close === undefined ? '' : `did you mean "${close}"? `
      throw new InvalidOptionError(`unknown option "${key}"; ${hint}expected one of ${[...PLUGIN_OPTIONS].join(', ')}`)
    }
  }
  const httpRoutes = options.httpRoutes ?? 'opt-in'
  if (httpRoutes !== 'opt-in' && httpRoutes !== 'all') {
    throw new InvalidOptionError('option httpRoutes must be "opt-in" or "all"')
  }
  return {
    authentication: options.authentication === undefined ? [] : checkAuthentication(options.authentication, 'option authentication'),
    permissions: options.permissions === undefined ? [AllowAny] : checkPermissions(options.permissions, 'option permissions'),
    authenticatorClass: options.authenticatorClass === undefined
      ? ChanxAuthenticator
      : checkAuthenticatorClass(options.authenticatorClass, 'option authenticatorClass'),
    sendAuthenticationMessage: options.sendAuthenticationMessage === undefined
      ? true
      : checkBoolean(options.sendAuthenticationMessage, 'option sendAuthenticationMessage'),
    rejectUpgrade: options.rejectUpgrade === undefined ? false : checkBoolean(options.rejectUpgrade, 'option rejectUpgrade'),
    httpRoutes,
    allowedOrigins: options.allowedOrigins === undefined ? undefined : checkAllowedOrigins(options.allowedOrigins, 'option allowedOrigins'),
    redactQueryParams: options.redactQueryParams === undefined ? [] : checkNames(options.redactQueryParams, 'option redactQueryParams'),
    reauthenticateInterval: options.reauthenticateInterval === undefined
      ? 0
      : checkInterval(options.reauthenticateInterval, 'option reauthenticateInterval'),
    maxQueuedFrames: checkCount(options.maxQueuedFrames, DEFAULT_MAX_QUEUED_FRAMES, 'option maxQueuedFrames'),
    maxQueuedBytes: checkCount(options.maxQueuedBytes, DEFAULT_MAX_QUEUED_BYTES, 'option maxQueuedBytes'),
    closeGracePeriod: options.closeGracePeriod === undefined
      ? DEFAULT_CLOSE_GRACE_PERIOD
      : checkInterval(options.closeGracePeriod, 'option closeGracePeriod'),
    handshakeTimeout: options.handshakeTimeout === undefined
      ? DEFAULT_HANDSHAKE_TIMEOUT
      : checkInterval(options.handshakeTimeout, 'option handshakeTimeout'),
    limits: {
      heartbeatInterval: options.heartbeatInterval === undefined ? 30_000 : checkInterval(options.heartbeatInterval, 'option heartbeatInterval'),
      idleTimeout: options.idleTimeout === undefined ? 0 : checkInterval(options.idleTimeout, 'option idleTimeout'),
      maxBufferedBytes: checkCount(options.maxBufferedBytes, 1024 * 1024, 'option maxBufferedBytes'),
      maxConnectionsPerUser: checkCount(options.maxConnectionsPerUser, 0, 'option maxConnectionsPerUser'),
      maxConnectionsPerIp: checkCount(options.maxConnectionsPerIp, 0, 'option maxConnectionsPerIp'),
      resumeBudget: resolveResumeBudget(options.resumeBudget, 'option resumeBudget')
    },
    userKey: checkUserKey(options.userKey),
    rateLimit: checkRateLimit(options.rateLimit, DEFAULT_RATE_LIMIT, 'option rateLimit'),
    strict: options.strict === undefined ? false : checkBoolean(options.strict, 'option strict'),
    history: resolveHistoryOption(options.history, 'option history')
  }
}
