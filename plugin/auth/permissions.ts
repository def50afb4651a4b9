import type { FastifyRequest } from 'fastify'
import { InvalidOptionError } from '../core/errors'
import type { ChanxObject } from '../core/user-types'

type MaybePromise<T> = T | Promise<T>

/**
 * Set on what `and`, `or` and `not` return: whether an operand, however deep, checks objects. Their own
 * `hasObjectPermission` exists either way, so its presence says nothing.
 */
const kChecksObjects = Symbol('fastify-chanx.checksObjects')

/**
 * A DRF-shaped permission: a plain object, no base class. A missing method allows. `message` is the
 * detail of the 403 it causes.
 */
export interface Permission<Obj = ChanxObject> {
  hasPermission?(request: FastifyRequest): MaybePromise<boolean>
  hasObjectPermission?(request: FastifyRequest, obj: Obj): MaybePromise<boolean>
  message?: string
}

declare const authenticated: unique symbol

/**
 * A permission that refuses every anonymous request. Its type is branded, so that a typed route
 * (`defineSocketRoute`, `defineRoute`) whose `permissions` list it types its user as non-null.
 */
export interface AuthenticatedPermission extends Permission<unknown> {
  readonly [authenticated]: true
}

export const AllowAny: Permission<unknown> = Object.freeze({
  hasPermission: () => true
})

export const IsAuthenticated = Object.freeze({
  hasPermission: (request: FastifyRequest) => request.user != null
}) as Permission<unknown> as AuthenticatedPermission

export const DenyAll: Permission<unknown> = Object.freeze({
  hasPermission: () => false
})

function checkOperands (name: string, operands: readonly Permission<never>[]): void {
  if (operands.length === 0) {
    throw new InvalidOptionError(`${name}() needs at least one permission`)
  }
  for (const operand of operands) assertPermission(operand, `${name}() operand`)
}

async function allows (permission: Permission<any>, request: FastifyRequest): Promise<boolean> {
  return permission.hasPermission === undefined || await permission.hasPermission(request)
}

async function allowsObject (permission: Permission<any>, request: FastifyRequest, obj: unknown): Promise<boolean> {
  return permission.hasObjectPermission === undefined || await permission.hasObjectPermission(request, obj)
}

/** Every operand must allow (DRF's `&`). */
export function and<Obj> (...operands: Permission<Obj>[]): Permission<Obj> {
  checkOperands('and', operands)
  const composed: Permission<Obj> & { [kChecksObjects]: boolean } = {
    [kChecksObjects]: operands.some(checksObjects),
    async hasPermission (request) {
      for (const operand of operands) if (!await allows(operand, request)) return false
      return true
    },
    async hasObjectPermission (request, obj) {
      for (const operand of operands) if (!await allowsObject(operand, request, obj)) return false
      return true
    }
  }
  return composed
}

/**
 * One operand must allow (DRF's `|`). As in DRF ≥ 3.15, the object check asks each operand for both its
 * request and its object permission, so `or(A, B)` never lets A's request check pair with B's object check.
 */
export function or<Obj> (...operands: Permission<Obj>[]): Permission<Obj> {
  checkOperands('or', operands)
  const composed: Permission<Obj> & { [kChecksObjects]: boolean } = {
    [kChecksObjects]: operands.some(checksObjects),
    async hasPermission (request) {
      for (const operand of operands) if (await allows(operand, request)) return true
      return false
    },
    async hasObjectPermission (request, obj) {
      for (const operand of operands) {
        if (await allows(operand, request) && await allowsObject(operand, request, obj)) return true
      }
      return false
    }
  }
  return composed
}

/**
 * Inverts an operand (DRF's `~`). Unlike DRF, an operand without an object check gives a permission
 * without one: `not(IsAuthenticated)` must not deny every route that loads an object.
 */
export function not<Obj> (operand: Permission<Obj>): Permission<Obj> {
  checkOperands('not', [operand])
  const inverted: Permission<Obj> & { [kChecksObjects]: boolean } = {
    [kChecksObjects]: checksObjects(operand),
    async hasPermission (request) {
      return !await allows(operand, request)
    }
  }
  if (operand.hasObjectPermission !== undefined) {
    inverted.hasObjectPermission = async (request, obj) => !await allowsObject(operand, request, obj)
  }
  return inverted
}

/** Whether a permission checks objects (`hasObjectPermission`, here or in an operand of `and`/`or`/`not`). */
export function checksObjects (permission: Permission<any>): boolean {
  const composed = (permission as { [kChecksObjects]?: boolean })[kChecksObjects]
  return composed === undefined ? typeof permission.hasObjectPermission === 'function' : composed
}

export function assertPermission (value: unknown, where: string): asserts value is Permission<never> {
  const permission = value as (Permission<never> & { authenticate?: unknown }) | null
  if (permission === null || typeof permission !== 'object' ||
    (permission.hasPermission !== undefined && typeof permission.hasPermission !== 'function') ||
    (permission.hasObjectPermission !== undefined && typeof permission.hasObjectPermission !== 'function') ||
    (permission.message !== undefined && typeof permission.message !== 'string')) {
    throw new InvalidOptionError(`${where} must be an object with optional hasPermission(request), hasObjectPermission(request, obj) and message`)
  }
  // An authenticator among the permissions would check nothing and allow everyone.
  if (typeof permission.authenticate === 'function') {
    throw new InvalidOptionError(`${where} is an authenticator (it has authenticate(request)): put it in authentication, not in permissions`)
  }
  // Neither method: a permission that allows everyone by accident (a typo such as haspermission).
  if (permission.hasPermission === undefined && permission.hasObjectPermission === undefined) {
    throw new InvalidOptionError(`${where} has neither hasPermission(request) nor hasObjectPermission(request, obj): it would allow everyone (use AllowAny to say so)`)
  }
}
