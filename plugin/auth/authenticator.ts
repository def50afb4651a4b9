import type { FastifyRequest } from 'fastify'
import { ChanxRefusal, InvalidUserError, NotAuthenticated, NotFound, PermissionDenied } from '../core/errors'
import type { Permission } from './permissions'
import { DETAIL_PERMISSION_DENIED, statusText } from '../core/wire'
import type { ChanxObject, ChanxUser, ObjectLoader } from '../core/user-types'

/**
 * A DRF-shaped authenticator: a plain object. `authenticate` resolves to the user, or to null/undefined
 * when its kind of credentials is absent (the next authenticator is tried); it throws
 * `AuthenticationFailed` when they are present but bad. A `challenge` (the `WWW-Authenticate` value, e.g.
 * `Bearer realm="api"`) on the route's first authenticator turns "not authenticated" into 401.
 */
export interface Authenticator<User = ChanxUser> {
  authenticate(request: FastifyRequest): User | null | undefined | Promise<User | null | undefined>
  challenge?: string
  /** Reads cookies: a browser sends them on cross-site handshakes too, so the route checks `Origin`. */
  usesCookies?: boolean
  /** Query parameters that carry credentials: redacted from the socket route's log lines. */
  credentialParams?: readonly string[]
  /** Prefixes of `Sec-WebSocket-Protocol` values that carry credentials (`bearer` for `bearer.<jwt>`): never echoed. */
  credentialProtocols?: readonly string[]
  /**
   * Verifies a fresh credential a client sends in-band (the `authenticate` action) and resolves to its
   * user; throws `AuthenticationFailed` when it is bad. Records the new expiry with `setCredentialExpiry`.
   */
  refreshToken?(request: FastifyRequest, token: string): Promise<User>
  /** Reloads what the handshake read once (a session from its store) before a socket is re-authenticated. */
  refresh?(request: FastifyRequest): void | Promise<void>
  /** What it reads, for the AsyncAPI document and the playground; an authenticator without one is listed as custom. */
  scheme?: AuthenticatorScheme
}

/** Where an authenticator finds its credentials. */
export type CredentialSource =
  /** `Authorization: <scheme> <credentials>` (`scheme`, e.g. `Bearer`). */
  | { in: 'header', name: 'Authorization', scheme: string }
  /** Another header, e.g. `X-Api-Key`. */
  | { in: 'header', name: string }
  /** A cookie; no `name`: the one a plugin was configured with (@fastify/jwt's `cookie.cookieName`). */
  | { in: 'cookie', name?: string }
  | { in: 'query', name: string }
  /** A `Sec-WebSocket-Protocol` value `<prefix>.<credentials>`. */
  | { in: 'protocol', prefix: string }

/** Describes an authenticator: `{ kind: 'jwt', sources: [{ in: 'cookie', name: 'token' }] }`. */
export interface AuthenticatorScheme {
  /** The kind of credentials: `'jwt'`, `'session cookie'`, or your own words. */
  kind: string
  /** Where it reads them, in the order it looks. */
  sources: readonly CredentialSource[]
  /** One sentence for people reading the document. */
  description?: string
}

export interface AuthenticationResultInit<User = ChanxUser, Obj = ChanxObject> {
  isAuthenticated: boolean
  statusCode: number
  /** Defaults to the standard reason phrase of `statusCode`. */
  statusText?: string
  /** The `data` of the authentication message and the body of an HTTP refusal; defaults to `{detail: statusText}`. */
  data?: unknown
  user?: User | null
  obj?: Obj | null
}

/** The outcome of a handshake, as Chanx's `AuthenticationResult` (fields in camelCase). */
export class AuthenticationResult<User = ChanxUser, Obj = ChanxObject> {
  isAuthenticated: boolean
  statusCode: number
  statusText: string
  data: unknown
  user: User | null
  obj: Obj | null

  constructor (init: AuthenticationResultInit<User, Obj>) {
    // The status answers an HTTP request or becomes close code 4000 + status: it must be a real HTTP status.
    if (!Number.isInteger(init.statusCode) || init.statusCode < 100 || init.statusCode > 599) {
      throw new TypeError(`AuthenticationResult: statusCode must be an HTTP status from 100 to 599, got ${String(init.statusCode)}`)
    }
    this.isAuthenticated = init.isAuthenticated
    this.statusCode = init.statusCode
    this.statusText = init.statusText ?? statusText(init.statusCode)
    this.data = init.data === undefined ? { detail: this.statusText } : init.data
    this.user = init.user ?? null
    this.obj = init.obj ?? null
  }
}

/**
 * `null`, `undefined` and `false` mean "no user here" (the next authenticator is tried): `false` is what the
 * idiom `key === KEY && user` gives for a wrong key, and what a `loadUser` returns for a deactivated user.
 */
export function isNoUser (value: unknown): value is null | undefined | false {
  return value === null || value === undefined || value === false
}

/**
 * What can be a user: an object, a non-empty string, a finite number (0 included: ids start there) or a
 * bigint. Anything else (`true`, `''`, NaN, a function, a Symbol) is a bug in the authenticator: thrown,
 * so the request is answered 500 and logged, never let in.
 */
export function checkUser (value: unknown): void {
  switch (typeof value) {
    case 'object': return
    case 'string': if (value !== '') return; break
    case 'number': if (Number.isFinite(value)) return; break
    case 'bigint': return
  }
  const shown = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? JSON.stringify(value) : `a ${typeof value}`
  throw new InvalidUserError(shown)
}

/** What a route resolved from its own options and the plugin's defaults. */
export interface PipelineConfig {
  readonly authentication: readonly Authenticator<unknown>[]
  readonly permissions: readonly Permission<any>[]
  readonly objectLoader: ObjectLoader<unknown, any> | undefined
  /** The route's `objectName`, for Django's 404 text. */
  readonly objectName?: string | undefined
}

export type AuthenticatorClass = new (config: PipelineConfig) => ChanxAuthenticator<any, any>

/**
 * The handshake pipeline (DESIGN "Handshake pipeline"): authenticate, check permissions, load the object,
 * check object permissions. One instance per route, made at registration. Extend it and override
 * `authenticate` to add rules, calling `super.authenticate(request)` for the standard steps.
 */
export class ChanxAuthenticator<User = ChanxUser, Obj = ChanxObject> {
  readonly authentication: readonly Authenticator<unknown>[]
  readonly permissions: readonly Permission<any>[]
  readonly objectLoader: ObjectLoader<unknown, any> | undefined
  /** The 404 detail: Django's `No Room matches the given query.` when the route names its object, else DRF's `Not found.`. */
  readonly notFoundDetail: string | undefined

  constructor (config: PipelineConfig) {
    this.authentication = config.authentication
    this.permissions = config.permissions
    this.objectLoader = config.objectLoader
    this.notFoundDetail = config.objectName === undefined ? undefined : `No ${config.objectName} matches the given query.`
  }

  /** The `WWW-Authenticate` value of the first authenticator: its presence makes "not authenticated" a 401. */
  get challenge (): string | undefined {
    return this.authentication[0]?.challenge
  }

  /**
   * Runs the standard pipeline. Refusals (`AuthenticationFailed`, `PermissionDenied`, ... thrown by any
   * step) become a result with `isAuthenticated: false`; anything else thrown propagates and is answered 500.
   */
  async authenticate (request: FastifyRequest): Promise<AuthenticationResult<User, Obj>> {
    let user: User | null = null
    try {
      user = await this.authenticateUser(request)
      request.user = user as FastifyRequest['user']
      await this.checkPermissions(request, user)
      const obj = await this.loadObject(request)
      request.obj = obj as FastifyRequest['obj']
      if (obj !== null) await this.checkObjectPermissions(request, user, obj)
      return new AuthenticationResult<User, Obj>({
        isAuthenticated: true, statusCode: 200, statusText: 'OK', data: { detail: 'OK' }, user, obj
      })
    } catch (error) {
      if (error instanceof ChanxRefusal) return this.refusal(error, user)
      throw error
    }
  }

  /**
   * Runs the pipeline again on the handshake's request, for a socket that is already open
   * (`reauthenticateInterval`): authenticators first reload what may have changed (a destroyed session).
   */
  async reauthenticate (request: FastifyRequest): Promise<AuthenticationResult<User, Obj>> {
    for (const authenticator of this.authentication) {
      if (authenticator.refresh !== undefined) await authenticator.refresh(request)
    }
    return await this.authenticate(request)
  }

  /** The result for a refusal thrown by any step, with DRF's status: 401 only where a challenge exists. */
  protected refusal (error: ChanxRefusal, user: User | null): AuthenticationResult<User, Obj> {
    let statusCode: number
    if (error instanceof NotFound) statusCode = 404
    else if (error instanceof PermissionDenied) statusCode = 403
    else statusCode = this.challenge === undefined ? 403 : 401
    return new AuthenticationResult<User, Obj>({
      isAuthenticated: false, statusCode, data: { detail: error.detail }, user
    })
  }

  protected async authenticateUser (request: FastifyRequest): Promise<User | null> {
    for (const authenticator of this.authentication) {
      const user: unknown = await authenticator.authenticate(request)
      if (isNoUser(user)) continue
      checkUser(user)
      return user as User
    }
    return null
  }

  protected async checkPermissions (request: FastifyRequest, user: User | null): Promise<void> {
    for (const permission of this.permissions) {
      if (permission.hasPermission !== undefined && !await permission.hasPermission(request)) {
        this.deny(permission, user)
      }
    }
  }

  protected async loadObject (request: FastifyRequest): Promise<Obj | null> {
    if (this.objectLoader === undefined) return null
    const obj = await this.objectLoader(request)
    if (obj === null || obj === undefined) throw new NotFound(this.notFoundDetail)
    return obj as Obj
  }

  protected async checkObjectPermissions (request: FastifyRequest, user: User | null, obj: Obj): Promise<void> {
    for (const permission of this.permissions) {
      if (permission.hasObjectPermission !== undefined && !await permission.hasObjectPermission(request, obj)) {
        this.deny(permission, user)
      }
    }
  }

  /** As DRF's `permission_denied`: an anonymous request on a route that authenticates is "not authenticated". */
  protected deny (permission: Permission<any>, user: User | null): never {
    if (user === null && this.authentication.length > 0) throw new NotAuthenticated()
    throw new PermissionDenied(permission.message ?? DETAIL_PERMISSION_DENIED)
  }
}
