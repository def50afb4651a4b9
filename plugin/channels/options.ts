import type { FastifyBaseLogger } from 'fastify'
import { InvalidOptionError } from '../core/errors'
import { ChannelHub } from './hub'
import { channelKeys, type ChannelSecret } from './secret'
import type { ChannelLayer } from './layer'
import { MemoryLayer } from './memory-layer'
import { Presence, redisOf, resolvePresenceOption, type PresenceOption } from './presence'
import { createRedisLayer, type RedisLayerOptions } from './redis/layer'
import { isClusterClient, isRedisClient, type RedisClientLike, type RedisClusterLike, type RedisClusterTarget } from './redis/connect'

/** The channel options of the plugin (`channelLayer`, `redis`): which layer the process's hub runs on. */

export type RedisOption =
  | string
  | RedisClientLike
  | RedisClusterLike
  | ({ url: string } & RedisLayerOptions)
  | (RedisClusterTarget & RedisLayerOptions)

export interface ChannelOptions {
  /** A channel layer of your own (anything implementing `ChannelLayer`). */
  channelLayer?: ChannelLayer
  /**
   * Carry groups across processes over Redis: a URL (`redis://127.0.0.1:6379`), an ioredis client (an
   * @fastify/redis instance is one), `{ url, prefix, connectTimeout, … }`; or a Redis Cluster (sharded
   * pub/sub): `{ cluster: [{ host, port }, …], clusterOptions, prefix, … }` or an ioredis `Cluster`.
   * Unset: in process only.
   */
  redis?: RedisOption
  /**
   * A shared secret (at least 32 bytes; or a list, the first signs and all verify) with which every
   * process signs its channel envelopes and drops any not signed with it: publishing on Redis is then
   * not enough to forge broadcasts, user messages or disconnects. Every process needs the same secret.
   */
  channelSecret?: ChannelSecret
  /**
   * Keep who is in each group, across every process, for `app.chanx.presence(group)`: `true` or
   * `{ ttl }` (ms a dead process's entry outlives its last heartbeat; default 30 000). On Redis it costs
   * one small script per group whose local membership changes (coalesced per tick) and one per live
   * group per process every ttl/3. Default off.
   */
  presence?: PresenceOption
}

const LAYER_KEYS = ['prefix', 'connectTimeout', 'subscribeTimeout', 'publishTimeout', 'logger']

/** A misspelt key would otherwise be a silent default (another prefix, another timeout). */
function checkKeys (value: object, form: string, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new InvalidOptionError(`option redis ${form} has an unknown key "${key}"; allowed: ${allowed.join(', ')}`)
  }
}

/** The hub the plugin's options ask for, and its presence when asked for; a Redis that cannot be reached fails registration. */
export async function createChannels (options: ChannelOptions, logger: FastifyBaseLogger): Promise<{ hub: ChannelHub, presence: Presence | null }> {
  const presence = resolvePresenceOption(options.presence)
  const own = options.channelLayer
  if (presence !== null && own != null && !(own instanceof MemoryLayer) && redisOf(own) === null) {
    // Another layer may span processes that this one cannot ask: a count of this process alone would be wrong.
    throw new InvalidOptionError('option presence needs the in-process channel layer or redis; a channelLayer of your own cannot share presence across processes')
  }
  const hub = await createHub(options, logger)
  if (presence === null) return { hub, presence: null }
  // Entries are signed with the same secret as envelopes (already checked by createHub).
  const keys = options.channelSecret === undefined ? [] : channelKeys(options.channelSecret, 'option channelSecret')
  return { hub, presence: new Presence(hub, { ...presence, keys }) }
}

/** Builds the hub the plugin's options ask for; a Redis that cannot be reached fails registration. */
export async function createHub (options: ChannelOptions, logger: FastifyBaseLogger): Promise<ChannelHub> {
  if (options.channelLayer !== undefined && options.redis !== undefined) {
    throw new InvalidOptionError('options channelLayer and redis exclude each other: pass one')
  }
  const secret = options.channelSecret === undefined ? undefined : channelKeys(options.channelSecret, 'option channelSecret')
  let layer: ChannelLayer | undefined = options.channelLayer
  if (layer !== undefined && (layer === null || typeof layer !== 'object' || typeof layer.publish !== 'function' || typeof layer.subscribe !== 'function')) {
    throw new InvalidOptionError('option channelLayer must implement ChannelLayer (subscribe, unsubscribe, publish, setListener, close)')
  }
  const redis = options.redis
  if (redis !== undefined) {
    if (redis === '') throw new InvalidOptionError('option redis is an empty string: give a URL such as redis://127.0.0.1:6379, or leave it unset')
    if (typeof redis === 'string') layer = await createRedisLayer({ url: redis }, { logger })
    else if (isRedisClient(redis) || isClusterClient(redis)) layer = await createRedisLayer(redis, { logger })
    else if (redis !== null && typeof redis === 'object' && 'url' in redis && typeof redis.url === 'string') {
      checkKeys(redis, '{ url }', ['url', ...LAYER_KEYS])
      const { url, ...layerOptions } = redis
      layer = await createRedisLayer({ url }, { logger, ...layerOptions })
    } else if (redis !== null && typeof redis === 'object' && 'cluster' in redis && redis.cluster !== undefined) {
      checkKeys(redis, '{ cluster }', ['cluster', 'clusterOptions', ...LAYER_KEYS])
      const { cluster, clusterOptions, ...layerOptions } = redis
      layer = await createRedisLayer({ cluster, clusterOptions }, { logger, ...layerOptions })
    } else {
      throw new InvalidOptionError('option redis must be a URL, an ioredis client or Cluster, { url, prefix, connectTimeout, subscribeTimeout, publishTimeout }, or { cluster: [{ host, port }, …], clusterOptions, prefix, connectTimeout, subscribeTimeout, publishTimeout }')
    }
  }
  return new ChannelHub({ layer, logger, secret })
}
