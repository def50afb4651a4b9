import type { FastifyBaseLogger } from 'fastify'
import { WebSocket } from 'ws'
import type { AsyncApiDocument } from '../asyncapi/document'
import type { ChannelLayer } from './layer'
import type { ConnectionGuard } from '../connection/guard'
import { InvalidChannelArgumentError } from './errors'
import { InvalidOptionError } from '../core/errors'
import { ChannelHub, type ChannelMember } from './hub'
import type { UserKeyFunction } from '../core/identity'
import { createRedisLayer, type RedisClientLike, type RedisLayerOptions } from './redis-layer'

/**
 * The channel layer as the plugin uses it: which layer the hub runs on, each connection as a hub member,
 * and the server-wide API (`app.chanx`) that reaches groups and users from a REST route or a job.
 */

export type RedisOption = string | RedisClientLike | ({ url: string } & RedisLayerOptions)

export interface ChannelOptions {
  /** A channel layer of your own (anything implementing `ChannelLayer`). */
  channelLayer?: ChannelLayer
  /**
   * Carry groups across processes over Redis: a URL (`redis://127.0.0.1:6379`), an ioredis client (an
   * @fastify/redis instance is one), or `{ url, prefix, connectTimeout }`. Unset: in process only.
   */
  redis?: RedisOption
}

function isRedisClient (value: unknown): value is RedisClientLike {
  return value !== null && typeof value === 'object' && typeof (value as { duplicate?: unknown }).duplicate === 'function'
}

/** Builds the hub the plugin's options ask for; a Redis that cannot be reached fails registration. */
export async function createHub (options: ChannelOptions, logger: FastifyBaseLogger): Promise<ChannelHub> {
  if (options.channelLayer !== undefined && options.redis !== undefined) {
    throw new InvalidOptionError('options channelLayer and redis exclude each other: pass one')
  }
  let layer: ChannelLayer | undefined = options.channelLayer
  if (layer !== undefined && (typeof layer !== 'object' || typeof layer.publish !== 'function' || typeof layer.subscribe !== 'function')) {
    throw new InvalidOptionError('option channelLayer must implement ChannelLayer (subscribe, unsubscribe, publish, setListener, close)')
  }
  const redis = options.redis
  if (redis !== undefined) {
    if (redis === '') throw new InvalidOptionError('option redis is an empty string: give a URL such as redis://127.0.0.1:6379, or leave it unset')
    if (typeof redis === 'string') layer = await createRedisLayer({ url: redis }, { logger })
    else if (isRedisClient(redis)) layer = await createRedisLayer(redis, { logger })
    else if (redis !== null && typeof redis === 'object' && typeof redis.url === 'string') {
      const { url, ...layerOptions } = redis
      layer = await createRedisLayer({ url }, { logger, ...layerOptions })
    } else {
      throw new InvalidOptionError('option redis must be a URL, an ioredis client, or { url, prefix, connectTimeout }')
    }
  }
  return new ChannelHub({ layer, logger })
}

let nextMemberId = 0

/**
 * Runs a hub send. A wrong argument rejects (a bug to see); a channel layer that fails to publish (Redis
 * down) is logged and resolves: delivery is at-most-once, and a broadcast nobody awaits must not become
 * an unhandled rejection that ends the process.
 */
async function settle (send: () => Promise<void>, log: FastifyBaseLogger): Promise<void> {
  try {
    await send()
  } catch (err) {
    if (err instanceof InvalidChannelArgumentError || err instanceof InvalidOptionError) throw err
    log.error({ err }, 'fastify-chanx: a message could not be published to the channel layer')
  }
}

/**
 * A connection as the hub sees it. It exists from the handshake on, before the socket opens, so that its
 * groups are joined before the authentication message goes out: what is sent to it meanwhile waits and is
 * sent, in order, right after that message.
 */
export class SocketMember implements ChannelMember {
  readonly id: string
  private socket: WebSocket | null = null
  private pending: string[] | null = null
  private closeRequest: { code: number, reason: string } | null = null
  eventListener: ((name: string, payload: unknown) => void) | null = null

  constructor (
    readonly userKey: string | null,
    private readonly hub: ChannelHub,
    private readonly guard: ConnectionGuard,
    private readonly log: FastifyBaseLogger
  ) {
    this.id = (++nextMemberId).toString(36)
  }

  get groups (): readonly string[] {
    return this.hub.groupsOf(this)
  }

  join (group: string): Promise<void> {
    return this.hub.join(this, group)
  }

  leave (group: string): Promise<void> {
    return this.hub.leave(this, group)
  }

  /** `ctx.broadcast`: to the given groups, or to this socket's own. */
  broadcast (message: object, groups?: string | readonly string[], excludeSelf = true): Promise<void> {
    return settle(() => this.hub.broadcast(groups ?? this.hub.groupsOf(this), message, { sender: this, excludeSelf }), this.log)
  }

  sendEvent (name: string, payload: unknown, groups?: string | readonly string[]): Promise<void> {
    return settle(() => this.hub.sendEvent(groups ?? this.hub.groupsOf(this), name, payload), this.log)
  }

  /** Leaves every group: on any close of the socket, or a handshake whose socket never opened. */
  leaveAll (): void {
    this.hub.leaveAll(this).catch((err: unknown) => this.log.warn({ err }, 'fastify-chanx: leaving the groups of a closed socket failed'))
  }

  /** The socket opened: flush what waited, then carry out a close that was asked for meanwhile. */
  open (socket: WebSocket): void {
    this.socket = socket
    const pending = this.pending
    this.pending = null
    if (pending !== null) for (const data of pending) this.send(data)
    if (this.closeRequest !== null) socket.close(this.closeRequest.code, this.closeRequest.reason)
  }

  send (data: string): void {
    const socket = this.socket
    if (socket === null) {
      (this.pending ??= []).push(data)
      return
    }
    if (socket.readyState !== WebSocket.OPEN || this.guard.overflowing(socket)) return
    socket.send(data)
  }

  close (code: number, reason: string): void {
    if (this.socket === null) this.closeRequest = { code, reason }
    else this.socket.close(code, reason)
  }

  onEvent (name: string, payload: unknown): void {
    this.eventListener?.(name, payload)
  }
}

/** The server-wide API, `app.chanx`: usable from a REST route, a job, anywhere with the app. */
export interface ChanxServerApi {
  /** Sends `message` to every member of the groups, in every process (`is_mine` and `is_current` false). */
  broadcast(groups: string | readonly string[], message: object): Promise<void>
  /** Sends `message` to every socket of a user (a user object, or its key), in every process. */
  sendToUser(user: unknown, message: object): Promise<void>
  /** Closes every socket of a user, in every process (default code 1000). */
  disconnectUser(user: unknown, code?: number, reason?: string): Promise<void>
  /** Members of a group across every process. */
  groupSize(group: string): Promise<number>
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
  asyncapi: () => AsyncApiDocument
): ChanxServerApi {
  const keyOf = (user: unknown): string => {
    const key = typeof user === 'string' ? user : userKey(user)
    if (key === null || key === undefined) throw new InvalidOptionError('a user (or user key) is needed; anonymous users cannot be addressed')
    return key
  }
  return {
    hub,
    broadcast: (groups, message) => settle(() => hub.broadcast(groups, message), log),
    sendToUser: (user, message) => settle(() => hub.sendToUser(keyOf(user), message), log),
    disconnectUser: (user, code = 1000, reason = '') => settle(() => hub.disconnectUser(keyOf(user), code, reason), log),
    groupSize: (group) => hub.size(group),
    sendEvent: (groups, name, payload) => settle(() => hub.sendEvent(groups, name, payload), log),
    asyncapi
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** fastify-chanx's server-wide API: groups, users, events. */
    chanx: ChanxServerApi
  }
}
