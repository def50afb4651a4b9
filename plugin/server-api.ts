import type { FastifyBaseLogger } from 'fastify'
import type { AsyncApiDocument } from './asyncapi/document'
import { InvalidOptionError } from './core/errors'
import { keyOfUser, type UserKeyFunction } from './core/identity'
import type { ChannelHub } from './channels/hub'
import { guarded, settle } from './channels/settle'
import type { Presence, PresenceInfo } from './channels/presence'
import { PresenceDisabledError } from './channels/errors'

/** The server-wide API (`app.chanx`) that reaches groups and users from a REST route or a job. */

/**
 * The messages a socket route, as `defineSocketRoute` returned it, declares in `outgoing` (what its clients
 * are typed to receive); `object` when no route is named.
 */
export type BroadcastMessage<Route = never> = [Route] extends [never]
  ? object
  : '__chanx' extends keyof Route
    ? NonNullable<Route[keyof Route & '__chanx']> extends { outgoing: infer Outgoing } ? Outgoing : never
    : never

/** The server-wide API, `app.chanx`: usable from a REST route, a job, anywhere with the app. */
export interface ChanxServerApi {
  /**
   * Sends `message` to every member of the groups, in every process (`is_mine` and `is_current` false).
   * `app.chanx.broadcast<typeof route>(groups, message)` types `message` by that route's `outgoing` schemas.
   */
  broadcast<Route = never>(groups: string | readonly string[], message: BroadcastMessage<Route>): Promise<void>
  /** Sends `message` to every socket of a user (a user object, or its key), in every process. */
  sendToUser(user: unknown, message: object): Promise<void>
  /** Closes every socket of a user, in every process (default code 1000). */
  disconnectUser(user: unknown, code?: number, reason?: string): Promise<void>
  /** Members of a group across every process. */
  groupSize(group: string): Promise<number>
  /**
   * The connections and users (by user key) of a group across every process. Needs the plugin option
   * `presence`; without it, rejects with FST_CHANX_PRESENCE_DISABLED.
   */
  presence(group: string): Promise<PresenceInfo>
  /** Runs the routes' event handler `name` inside every member connection of the groups. */
  sendEvent(groups: string | readonly string[], name: string, payload?: unknown): Promise<void>
  /** The hub behind it all. */
  readonly hub: ChannelHub
  /** The AsyncAPI 3.0 document of the socket routes declared so far (a fresh copy each call). */
  asyncapi(): AsyncApiDocument
}

export function createServerApi (
  hub: ChannelHub,
  userKey: UserKeyFunction,
  log: FastifyBaseLogger,
  asyncapi: () => AsyncApiDocument,
  presence: Presence | null = null
): ChanxServerApi {
  const keyOf = (user: unknown): string => {
    const key = typeof user === 'string' ? user : keyOfUser(userKey, user)
    if (key === null || key === undefined) throw new InvalidOptionError('a user (or user key) is needed; anonymous users cannot be addressed')
    return key
  }
  return {
    hub,
    broadcast: (groups, message) => settle(() => hub.broadcast(groups, message as object), hub.failures, log),
    sendToUser: (user, message) => settle(() => hub.sendToUser(keyOf(user), message), hub.failures, log),
    disconnectUser: (user, code = 1000, reason = '') => settle(() => hub.disconnectUser(keyOf(user), code, reason), hub.failures, log),
    groupSize: (group) => guarded(hub.size(group), log),
    presence: (group) => guarded(presence === null ? Promise.reject(new PresenceDisabledError()) : presence.get(group), log),
    sendEvent: (groups, name, payload) => settle(() => hub.sendEvent(groups, name, payload), hub.failures, log),
    asyncapi
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** fastify-chanx's server-wide API: groups, users, events. */
    chanx: ChanxServerApi
  }
}
