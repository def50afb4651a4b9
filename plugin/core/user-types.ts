import type { FastifyRequest } from 'fastify'

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
