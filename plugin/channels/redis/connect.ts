import { InvalidOptionError } from '../../core/errors'
import { withTimeout } from '../../core/timeout'
import { checkSlotRefreshThrottled, throttleSlotRefresh } from './ioredis-internals'
import { ChannelLayerUnreachableError, MissingIoredisError } from '../errors'

/**
 * Opening the Redis layer's two connections (a publisher and a subscriber) to one redis-server or to a
 * Redis Cluster. The shapes below are declared here rather than imported so that the package's types do
 * not require ioredis, an optional peer: only this file loads it, and only when a Redis layer is created.
 */

/** What the layer needs of an ioredis 6 client. An @fastify/redis instance (`app.redis`) is one. */
export interface RedisClientLike {
  readonly status: string
  /** ioredis sets it on both of its clients: `false` on `Redis`, `true` on `Cluster`. */
  readonly isCluster?: boolean
  duplicate (override?: Record<string, unknown>): RedisClientLike
  publish (channel: string, message: string): Promise<number>
  subscribe (...channels: string[]): Promise<unknown>
  unsubscribe (...channels: string[]): Promise<unknown>
  connect (): Promise<void>
  disconnect (reconnect?: boolean): void
  quit (): Promise<unknown>
  on (event: string, listener: (...args: any[]) => void): unknown
  removeListener (event: string, listener: (...args: any[]) => void): unknown
}

/** What the layer needs of an ioredis 6 `Redis.Cluster` (`new Redis.Cluster(nodes, options)`). */
export interface RedisClusterLike {
  readonly status: string
  /** `true` on an ioredis `Cluster` (how the layer tells it from a `Redis`). */
  readonly isCluster: boolean
  duplicate (startupNodes?: unknown[], override?: Record<string, unknown>): RedisClusterLike
  spublish (channel: string, message: string): Promise<unknown>
  ssubscribe (...channels: string[]): Promise<unknown>
  sunsubscribe (...channels: string[]): Promise<unknown>
  /** ioredis's: read the slot map again (CLUSTER SLOTS). */
  refreshSlotsCache? (): void
  connect (): Promise<void>
  disconnect (reconnect?: boolean): void
  quit (): Promise<unknown>
  on (event: string, listener: (...args: any[]) => void): unknown
  removeListener (event: string, listener: (...args: any[]) => void): unknown
}

/** A cluster node to start from: `{ host, port }` or `'redis://host:port'`. One reachable node is enough. */
export type RedisClusterNode = { host: string, port: number } | string

/** A Redis Cluster the layer opens itself. */
export interface RedisClusterTarget {
  /** Startup nodes; ioredis discovers the rest (CLUSTER SLOTS). */
  cluster: readonly RedisClusterNode[]
  /**
   * ioredis `ClusterOptions` for both connections (e.g. `{ redisOptions: { password, tls } }`, `natMap`).
   * The layer sets its own `lazyConnect`, `enableOfflineQueue`, `shardedSubscribers` and
   * `retryDelayOnFailover` over them.
   */
  clusterOptions?: Record<string, unknown>
}

/** `{ url }`, `{ cluster }`, an ioredis client or Cluster, or an @fastify/redis instance. */
export type RedisLayerTarget = { url: string } | RedisClusterTarget | RedisClientLike | RedisClusterLike

// Reconnect quickly and forever once started: a restarted Redis is back within a second.
const retryStrategy = (times: number): number => Math.min(times * 100, 1000)

// The publisher never queues: a broadcast made while Redis is down fails at once instead of arriving
// minutes later (at-most-once, as Django Channels), and an in-flight PUBLISH is never sent twice.
const PUBLISHER = { lazyConnect: true, enableOfflineQueue: false, autoResendUnfulfilledCommands: false, retryStrategy }
// The subscriber queues (a SUBSCRIBE made during an outage runs on reconnection, bounded by
// subscribeTimeout) and resubscribes itself on 'ready' from the layer's own list of live channels, so
// what it listens to after a restart is exactly what the hub wants at that moment.
const SUBSCRIBER = { lazyConnect: true, autoResubscribe: false, maxRetriesPerRequest: null, retryStrategy }

// On a cluster, the publisher fails a command whose node connection closed instead of resending it
// (retryDelayOnFailover 0): it may have run already, and a resend would deliver twice. CLUSTERDOWN (a
// failover in progress) fails at once too (retryDelayOnClusterDown 0) rather than being retried past
// publishTimeout. MOVED and ASK say the command did not run, so ioredis still follows those. The offline
// queue stays on, because ioredis also uses it for a node connection that is still opening (without it,
// the first commands to each node would fail); the layer never publishes while the cluster is not ready.
const CLUSTER_PUBLISHER = {
  lazyConnect: true,
  enableOfflineQueue: true,
  retryDelayOnFailover: 0,
  retryDelayOnClusterDown: 0,
  clusterRetryStrategy: retryStrategy
}
// The subscriber keeps one connection per primary (ioredis's sharded subscribers) and SSUBSCRIBEs each
// channel on the primary owning its slot; after a failover ioredis reconnects to the promoted replica
// and subscribes its channels again there.
const CLUSTER_SUBSCRIBER = {
  lazyConnect: true,
  shardedSubscribers: true,
  enableOfflineQueue: true,
  clusterRetryStrategy: retryStrategy
}

export function isClusterClient (value: unknown): value is RedisClusterLike {
  return typeof value === 'object' && value !== null && (value as { isCluster?: unknown }).isCluster === true &&
    typeof (value as RedisClusterLike).duplicate === 'function' && typeof (value as RedisClusterLike).spublish === 'function'
}

export function isRedisClient (value: unknown): value is RedisClientLike {
  return typeof value === 'object' && value !== null && (value as { isCluster?: unknown }).isCluster !== true &&
    typeof (value as RedisClientLike).duplicate === 'function' && typeof (value as RedisClientLike).publish === 'function'
}

interface Ioredis {
  Redis: new (url: string, options: object) => RedisClientLike
  Cluster: new (nodes: unknown[], options: object) => RedisClusterLike
}

function loadIoredis (): Ioredis {
  try {
    // Required lazily: ioredis is an optional peer and the in-process layer must work without it.
    const mod = require('ioredis')
    const Redis = mod.Redis ?? mod.default ?? mod
    return { Redis, Cluster: mod.Cluster ?? Redis.Cluster }
  } catch {
    throw new MissingIoredisError()
  }
}

/** The URL without its password, for messages and logs. */
function redact (url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return 'the configured Redis URL'
  }
}

function checkNodes (nodes: unknown): RedisClusterNode[] {
  if (!Array.isArray(nodes) || nodes.length === 0) {
    throw new InvalidOptionError('redis.cluster must be a non-empty array of { host, port } or "redis://host:port" nodes')
  }
  for (const node of nodes) {
    const ok = (typeof node === 'string' && node !== '') ||
      (typeof node === 'object' && node !== null && typeof node.host === 'string' && node.host !== '' &&
        Number.isInteger(node.port) && node.port > 0 && node.port < 65536)
    if (!ok) throw new InvalidOptionError('redis.cluster must be a non-empty array of { host, port } or "redis://host:port" nodes')
  }
  return nodes
}

function describeNode (node: RedisClusterNode): string {
  return typeof node === 'string' ? redact(node) : `${node.host}:${node.port}`
}

/** Resolve once `client` is ready; reject on its first error, its end, or after `ms`. */
export function waitReady (client: { status: string } & Pick<RedisClientLike, 'on' | 'removeListener' | 'connect'>, ms: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve()
  let onReady!: () => void
  let onError!: (err: Error) => void
  let onEnd!: () => void
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve
    onError = reject
    onEnd = () => reject(new Error('connection ended'))
    client.on('ready', onReady)
    client.on('error', onError)
    client.on('end', onEnd)
    if (client.status === 'wait') client.connect().catch(() => {})
  })
  return withTimeout(ready, ms, () => new Error(`no answer within ${ms} ms`)).finally(() => {
    client.removeListener('ready', onReady)
    client.removeListener('error', onError)
    client.removeListener('end', onEnd)
  })
}

export type RedisConnections =
  | { cluster: false, publisher: RedisClientLike, subscriber: RedisClientLike }
  | { cluster: true, publisher: RedisClusterLike, subscriber: RedisClusterLike }

/**
 * Open (or duplicate from the caller's client, which is left as it is and never closed here) the
 * publisher and the subscriber, and wait until both are ready. Rejects with
 * FST_CHANX_CHANNEL_LAYER_UNREACHABLE after `connectTimeout`, having closed what it opened.
 */
export async function openConnections (target: RedisLayerTarget, connectTimeout: number): Promise<RedisConnections> {
  let connections: RedisConnections
  let where: string
  if (isClusterClient(target)) {
    connections = {
      cluster: true,
      publisher: target.duplicate([], { ...CLUSTER_PUBLISHER, slotsRefreshTimeout: connectTimeout }),
      subscriber: target.duplicate([], { ...CLUSTER_SUBSCRIBER, slotsRefreshTimeout: connectTimeout })
    }
    where = 'the given ioredis Cluster'
  } else if (isRedisClient(target)) {
    // Two duplicates: a subscriber, since a connection in subscriber mode can run nothing else, and a
    // publisher without the offline queue the caller's client likely has, which would replay a
    // broadcast made during an outage after recovery.
    connections = {
      cluster: false,
      publisher: target.duplicate({ ...PUBLISHER, connectTimeout }),
      subscriber: target.duplicate({ ...SUBSCRIBER, connectTimeout })
    }
    where = 'the given ioredis client\'s server'
  } else if (typeof target === 'object' && target !== null && 'cluster' in target) {
    const nodes = checkNodes(target.cluster)
    const extra = target.clusterOptions ?? {}
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new InvalidOptionError('redis.clusterOptions must be an object')
    const { Cluster } = loadIoredis()
    connections = {
      cluster: true,
      publisher: new Cluster([...nodes], { ...extra, ...CLUSTER_PUBLISHER, slotsRefreshTimeout: connectTimeout }),
      subscriber: new Cluster([...nodes], { ...extra, ...CLUSTER_SUBSCRIBER, slotsRefreshTimeout: connectTimeout })
    }
    where = `the Redis Cluster at ${nodes.map(describeNode).join(', ')}`
  } else if (typeof target === 'object' && target !== null && typeof (target as { url?: unknown }).url === 'string') {
    const { Redis } = loadIoredis()
    const url = (target as { url: string }).url
    connections = {
      cluster: false,
      publisher: new Redis(url, { ...PUBLISHER, connectTimeout }),
      subscriber: new Redis(url, { ...SUBSCRIBER, connectTimeout })
    }
    where = redact(url)
  } else {
    throw new InvalidOptionError('redis must be { url: "redis://…" }, { cluster: [{ host, port }, …] }, an ioredis client or Cluster, or an @fastify/redis instance')
  }

  if (connections.cluster) {
    try {
      throttleSlotRefresh(connections.publisher)
      throttleSlotRefresh(connections.subscriber)
    } catch (err) {
      connections.subscriber.disconnect()
      connections.publisher.disconnect()
      throw err
    }
  }
  // A cluster reports its failures on 'error' while connecting; these keep them from being unhandled
  // until the layer installs its own listeners.
  const swallow = (): void => {}
  connections.publisher.on('error', swallow)
  connections.subscriber.on('error', swallow)
  try {
    await Promise.all([waitReady(connections.publisher, connectTimeout), waitReady(connections.subscriber, connectTimeout)])
  } catch (err) {
    connections.subscriber.disconnect()
    connections.publisher.disconnect()
    throw new ChannelLayerUnreachableError(where, (err as Error).message, { cause: err })
  } finally {
    connections.publisher.removeListener('error', swallow)
    connections.subscriber.removeListener('error', swallow)
  }
  if (connections.cluster) {
    try {
      // The canary of channels/redis/ioredis-internals.ts's reach-in.
      checkSlotRefreshThrottled(connections.publisher)
      checkSlotRefreshThrottled(connections.subscriber)
    } catch (err) {
      connections.subscriber.disconnect()
      connections.publisher.disconnect()
      throw err
    }
  }
  return connections
}
