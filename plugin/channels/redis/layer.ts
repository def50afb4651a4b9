import type { ChannelLayer, ChannelListener, ChannelLogger } from '../layer'
import { silentLogger } from '../layer'
import {
  ChannelLayerClosedError,
  ChannelLayerNotReadyError,
  ChannelLayerPublishError,
  ChannelLayerTimeoutError
} from '../errors'
import { withOutcome } from '../outcomes'
import { InvalidOptionError } from '../../core/errors'
import { channels, type LayerEvent } from '../../core/diagnostics'
import { withTimeout } from '../../core/timeout'
import { redisName } from './names'
import { BarrierMarkers, isMarker } from './barrier'
import {
  openConnections,
  type RedisClientLike,
  type RedisClusterLike,
  type RedisConnections,
  type RedisLayerTarget
} from './connect'
import type { RedisHistoryAccess } from '../history/redis-store'

export type { RedisClientLike, RedisClusterLike, RedisClusterNode, RedisClusterTarget, RedisLayerTarget } from './connect'

export interface RedisLayerOptions {
  /**
   * Prepended to every Redis name, so several apps can share one Redis (default `'chanx:'`). It may not
   * contain `{` or `}`: the hub channel after it is the Redis Cluster hash tag.
   */
  prefix?: string
  /** How long creation may take before it fails with FST_CHANX_CHANNEL_LAYER_UNREACHABLE (default 5000 ms). */
  connectTimeout?: number
  /** How long a subscription may wait, e.g. while Redis restarts, before it fails (default 5000 ms). */
  subscribeTimeout?: number
  /**
   * How long a PUBLISH may wait for Redis's answer before it fails with FST_CHANX_CHANNEL_LAYER_TIMEOUT
   * (default 3000 ms). ioredis drops a command that was in flight when the connection broke without ever
   * settling it, and a hung Redis never answers: without this bound a broadcast could wait forever.
   */
  publishTimeout?: number
  /** Connection errors and reconnections are reported here (Fastify's `app.log` fits). */
  logger?: ChannelLogger
}

/**
 * The layer's Redis, for code that stores things beside a hub channel (history, presence): the publisher
 * connection and the naming rule that puts a channel's keys in its hash slot.
 */
export interface RedisLayerAccess {
  /**
   * The publisher connection: an ioredis `Redis` on one node, an ioredis `Cluster` on a cluster. It has no
   * offline queue: a command made while Redis is unreachable fails at once. Do not close it.
   */
  readonly client: RedisClientLike | RedisClusterLike
  /** True on a Redis Cluster. */
  readonly cluster: boolean
  /** What carries an envelope: `'spublish'` (sharded pub/sub) on a cluster, `'publish'` on one node. */
  readonly publishCommand: 'publish' | 'spublish'
  /** The layer's `prefix` option. */
  readonly prefix: string
  /** The Redis channel of hub channel `channel` (no suffix), or the name of one of its keys. */
  name (channel: string, suffix?: string): string
  /**
   * The one path for a command on `client`: `send(client)` runs only if the publisher is ready, else the
   * call rejects at once with FST_CHANX_CHANNEL_LAYER_NOT_READY (the command was never sent); it settles
   * within `timeout` ms (default `publishTimeout`), else FST_CHANX_CHANNEL_LAYER_TIMEOUT (the command was
   * sent and may still run). Use it for anything that must not run late after an outage.
   */
  command<T> (what: string, send: (client: RedisClientLike | RedisClusterLike) => Promise<T>, timeout?: number): Promise<T>
}

/** `promise`, or FST_CHANX_CHANNEL_LAYER_TIMEOUT after `ms`. */
function bounded<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  return withTimeout(promise, ms, () => new ChannelLayerTimeoutError(what, ms))
}

function positive (value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidOptionError(`${name} must be a positive number of milliseconds`)
  }
  return value
}

function publishState (state: LayerEvent['state'], error: Error | null): void {
  const event: LayerEvent = { layer: 'redis', state, error }
  channels.layer.publish(event)
}

/** How long a cluster must go without losing a node before the layer says it is back. */
const NODE_SETTLE = 1000

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref())

/**
 * Pub/sub over Redis: one dedicated subscriber and one publisher per process, one Redis subscription per
 * live channel per process (the hub refcounts members), never one per socket. On a Redis Cluster it uses
 * sharded pub/sub: each channel lives on the shard that owns its hash slot, and only that shard carries it.
 */
export class RedisLayer implements ChannelLayer {
  readonly name = 'redis'
  readonly redis: RedisLayerAccess
  private readonly connections: RedisConnections
  private readonly prefix: string
  private readonly subscribeTimeout: number
  private readonly publishTimeout: number
  private readonly logger: ChannelLogger
  /** Channels the hub wants, unprefixed: what is resubscribed after a reconnection. */
  private readonly live = new Set<string>()
  private listener: ChannelListener | null = null
  private resubscribed: (() => void) | null = null
  private closed = false
  private down = false
  private lastNodeLoss = 0
  private lastReady = 0
  private settling: NodeJS.Timeout | null = null
  /** The recovery barrier's markers (./barrier.ts): swallowed here, never handed to the hub. */
  private readonly markers = new BarrierMarkers()

  /** Use {@link createRedisLayer}, which waits for both connections. */
  constructor (connections: RedisConnections, options: Required<RedisLayerOptions>) {
    this.connections = connections
    this.prefix = options.prefix
    this.subscribeTimeout = options.subscribeTimeout
    this.publishTimeout = options.publishTimeout
    this.logger = options.logger
    const prefix = this.prefix
    this.redis = Object.freeze({
      client: connections.publisher,
      cluster: connections.cluster,
      publishCommand: connections.cluster ? 'spublish' : 'publish',
      prefix,
      name: (channel: string, suffix?: string) => redisName(prefix, channel, suffix),
      command: this.command.bind(this)
    })
    const { publisher, subscriber } = connections
    subscriber.on('error', this.onError.bind(this, 'subscriber'))
    publisher.on('error', this.onError.bind(this, 'publisher'))
    if (connections.cluster) {
      subscriber.on('smessage', this.onMessage.bind(this))
      // ioredis resubscribes a lost primary's channels on the replica that replaces it, then says so. A
      // sharded subscriber's loss comes with its node key; the connection pool's (replicas too) without.
      subscriber.on('-node', (_redis: unknown, node?: string) => {
        if (node === undefined) return
        this.lastNodeLoss = Date.now()
        this.onError('subscriber', new Error(`lost the cluster node ${node}`))
      })
      // ioredis says its subscribers are ready after every attempt, the failed ones during a failover
      // included: the layer counts itself back once a second has passed without another loss.
      subscriber.on('subscribersReady', () => {
        this.lastReady = Date.now()
        if (this.down && this.settling === null) this.settle(NODE_SETTLE)
      })
    } else {
      subscriber.on('message', this.onMessage.bind(this))
      subscriber.on('ready', this.onReady.bind(this))
      // A server that restarts closes the connection without any error: 'close' is the reliable signal.
      subscriber.on('close', this.onError.bind(this, 'subscriber', new Error('connection closed')))
    }
  }

  /**
   * Back once a second has passed since the last loss with a 'subscribersReady' after it. A loss with no
   * ready after it waits for the next ready (which re-arms this); a loss followed by a ready (even one
   * that came while this timer ran) re-arms for what is left of the second.
   */
  private settle (delay: number): void {
    this.settling = setTimeout(() => {
      this.settling = null
      if (!this.down || this.lastNodeLoss > this.lastReady) return
      const quiet = Date.now() - this.lastNodeLoss
      if (quiet >= NODE_SETTLE) this.onReconnected()
      else this.settle(NODE_SETTLE - quiet)
    }, delay)
    this.settling.unref()
  }

  /**
   * Redis is unreachable right now: between a connection error and the next 'ready' on one node; on a
   * cluster, between the loss of a primary's subscriber connection and ioredis's next 'subscribersReady'.
   */
  get reconnecting (): boolean {
    return this.down
  }

  setListener (listener: ChannelListener): void {
    this.listener = listener
  }

  onResubscribed (listener: () => void): void {
    this.resubscribed = listener
  }

  private onMessage (name: string, message: string): void {
    // `${prefix}{${channel}}`: the channel is what lies between the first `{` and the last `}`.
    if (this.listener === null || !name.startsWith(this.prefix + '{') || !name.endsWith('}')) return
    const channel = name.slice(this.prefix.length + 1, -1)
    if (isMarker(message)) this.markers.receive(channel, message)
    else this.listener(channel, message)
  }

  private onError (which: string, err: Error): void {
    if (this.closed) return
    // One line per outage, not one per retry.
    if (!this.down) {
      this.logger.warn({ err, connection: which }, 'fastify-chanx: Redis channel layer connection lost; reconnecting')
      if (channels.layer.hasSubscribers) publishState('lost', err)
    }
    this.down = true
  }

  private onReconnected (): void {
    if (this.closed || !this.down) return
    this.logger.warn({ channels: this.live.size }, 'fastify-chanx: Redis channel layer reconnected; resubscribing')
    this.down = false
    if (channels.layer.hasSubscribers) publishState('back', null)
    // On a cluster ioredis has resubscribed by now; on one node onReady says so once SUBSCRIBE answers.
    if (this.connections.cluster && this.resubscribed !== null) this.resubscribed()
  }

  private onReady (): void {
    if (this.closed) return
    this.onReconnected()
    if (this.live.size === 0) return
    const names = [...this.live].map((c) => redisName(this.prefix, c))
    ;(this.connections.subscriber as RedisClientLike).subscribe(...names).then(() => {
      if (!this.closed && this.resubscribed !== null) this.resubscribed()
    }, (err: Error) => {
      this.logger.error({ err }, 'fastify-chanx: Redis channel layer could not resubscribe')
    })
  }

  async subscribe (channel: string): Promise<void> {
    if (this.closed) throw new ChannelLayerClosedError()
    this.live.add(channel)
    const name = redisName(this.prefix, channel)
    const subscribing = this.connections.cluster
      ? this.subscribeSharded(this.connections.subscriber, channel, name, Date.now() + this.subscribeTimeout)
      : this.connections.subscriber.subscribe(name)
    await bounded(subscribing, this.subscribeTimeout, `subscribing to "${channel}"`)
  }

  /**
   * SSUBSCRIBE on the primary owning the slot. While that primary is down (a failover in progress)
   * ioredis fails the command at once; it is tried again until the deadline, as a SUBSCRIBE on one node
   * waits in the offline queue for the reconnection.
   */
  private async subscribeSharded (subscriber: RedisClusterLike, channel: string, name: string, deadline: number): Promise<void> {
    for (;;) {
      try {
        await subscriber.ssubscribe(name)
        return
      } catch (err) {
        if (this.closed || !this.live.has(channel) || Date.now() + 100 >= deadline) throw err
        await delay(100)
      }
    }
  }

  async unsubscribe (channel: string): Promise<void> {
    if (!this.live.delete(channel) || this.closed) return
    const name = redisName(this.prefix, channel)
    const unsubscribing = this.connections.cluster
      ? this.connections.subscriber.sunsubscribe(name)
      : this.connections.subscriber.unsubscribe(name)
    // A failed UNSUBSCRIBE only leaves envelopes the hub ignores, and a reconnection drops it anyway.
    await bounded(unsubscribing, this.subscribeTimeout, `unsubscribing from "${channel}"`)
      .catch((err: Error) => this.logger.warn({ err, channel }, 'fastify-chanx: Redis channel layer could not unsubscribe'))
  }

  /**
   * PUBLISH, or SPUBLISH on a cluster: its reply counts the subscribers on the shard that owns the
   * channel, which is every process subscribed to it, so the hub's cluster-wide counts hold there too.
   */
  publish (channel: string, envelope: string): Promise<number> {
    if (this.closed) return Promise.reject(new ChannelLayerClosedError())
    const name = redisName(this.prefix, channel)
    const { publisher } = this.connections
    // A cluster's offline queue would send it after recovery, late: at-most-once means failing now. One
    // node has no offline queue, but ioredis's own refusal does not say whether it was sent: this does.
    if (publisher.status !== 'ready') {
      const what = this.connections.cluster ? 'Redis Cluster' : 'Redis connection'
      return Promise.reject(withOutcome(new ChannelLayerPublishError(`"${channel}"`, `the ${what} is ${publisher.status}`), 'not_sent'))
    }
    const sent = this.connections.cluster
      ? this.connections.publisher.spublish(name, envelope) as Promise<number>
      : this.connections.publisher.publish(name, envelope)
    const reply = sent.catch((err: Error) => {
      // A node that died before this publisher ever learnt of the failover: ioredis gives up on it
      // (the publish may have run, so it is not resent) and waits for a MOVED to learn the new slot
      // map. Read it now, so the next publish goes to the promoted replica.
      if (this.connections.cluster) this.connections.publisher.refreshSlotsCache?.()
      // An error reply (CLUSTERDOWN, a refused command) means Redis did not run it; a broken
      // connection, that it may have.
      const outcome = err?.name === 'ReplyError' ? 'not_sent' : 'unknown'
      throw withOutcome(new ChannelLayerPublishError(`"${channel}"`, err?.message ?? String(err), { cause: err }), outcome)
    })
    // Settled by Redis's answer or by the timeout, whichever comes first: ioredis never settles a
    // command that was in flight when the connection broke, and a hung Redis never answers. A PUBLISH
    // that timed out was sent and cannot be taken back: a hung Redis that resumes still runs it.
    return withTimeout(reply, this.publishTimeout,
      () => withOutcome(new ChannelLayerTimeoutError(`publishing to "${channel}"`, this.publishTimeout), 'unknown'))
  }

  /**
   * Resolves once every publication on `channels` made before the call has been handed to the hub. Redis
   * pushes a connection's publications in the order it ran them, so a marker published now on a channel
   * comes back on this process's subscriber after everything published on that connection before it: on
   * one node one marker (on one of the channels this layer is subscribed to) covers them all; on a Cluster
   * each channel gets its own marker, since each shard has its own subscriber connection (so a barrier
   * costs one SPUBLISH per channel, delivered to every process subscribed to it, which drops it). A channel
   * this layer is not subscribed to delivers nothing to order. Markers carry this layer's random id, the
   * barrier's number and a random nonce, so another process (or a writer on Redis) cannot complete a wait
   * early; they are swallowed by the layer and never reach a hub. Rejects at once while the subscriber is
   * reconnecting or the publisher is not ready, and with FST_CHANX_CHANNEL_LAYER_TIMEOUT when the markers
   * are not all back within `subscribeTimeout`; the replay then reports the streams `unavailable`.
   */
  barrier (channels: readonly string[]): Promise<void> {
    if (this.closed) return Promise.reject(new ChannelLayerClosedError())
    if (this.down) return Promise.reject(new ChannelLayerNotReadyError('a subscriber barrier', 'the subscriber is reconnecting'))
    const marked: string[] = []
    for (const channel of channels) {
      if (!this.live.has(channel) || marked.includes(channel)) continue
      marked.push(channel)
      if (!this.connections.cluster) break
    }
    if (marked.length === 0) return Promise.resolve()
    const { texts, echoed } = this.markers.make(marked)
    const sent = marked.map((channel, i) => this.command(`a barrier marker on "${channel}"`, (client) => this.connections.cluster
      ? (client as RedisClusterLike).spublish(redisName(this.prefix, channel), texts[i]!)
      : (client as RedisClientLike).publish(redisName(this.prefix, channel), texts[i]!)))
    const all = Promise.all([echoed, ...sent]).then(() => {})
    return bounded(all, this.subscribeTimeout, 'a subscriber barrier').finally(() => this.markers.forget(texts))
  }

  /**
   * `send(publisher)`, only if the publisher is ready, bounded by `timeout` (default `publishTimeout`). A
   * command for a publisher that is not ready is never sent: it rejects at once with
   * FST_CHANX_CHANNEL_LAYER_NOT_READY (on a Cluster, ioredis's offline queue would otherwise hold it through
   * the outage and run it after recovery, late). One that times out (FST_CHANX_CHANNEL_LAYER_TIMEOUT) was
   * sent and may still run: a sent command cannot be taken back.
   */
  command<T> (what: string, send: (publisher: RedisClientLike | RedisClusterLike) => Promise<T>, timeout = this.publishTimeout): Promise<T> {
    if (this.closed) return Promise.reject(new ChannelLayerClosedError())
    const { publisher } = this.connections
    if (publisher.status !== 'ready') {
      return Promise.reject(new ChannelLayerNotReadyError(what, `the Redis ${this.connections.cluster ? 'Cluster' : 'connection'} is ${publisher.status}`))
    }
    let sent: Promise<T>
    try {
      sent = send(publisher)
    } catch (err) {
      return Promise.reject(err)
    }
    return bounded(sent, timeout, what)
  }

  /**
   * What the history over Redis (channels/history/redis-store.ts) needs: the publisher to run its scripts on,
   * the layer's names, and the barrier ({@link barrier}). `pubsub(channel)` is the name this
   * layer subscribes to; keys of a channel come from redisName(prefix, channel, suffix), in its hash slot.
   */
  historyAccess (): RedisHistoryAccess {
    const connections = this.connections
    return {
      client: connections.publisher,
      prefix: this.prefix,
      publishCommand: connections.cluster ? 'SPUBLISH' : 'PUBLISH',
      publishTimeout: this.publishTimeout,
      pubsub: this.redis.name,
      barrier: (channels) => this.barrier(channels),
      command: (what, send, timeout) => this.command(what, send, timeout)
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.listener = null
    if (this.settling !== null) clearTimeout(this.settling)
    this.live.clear()
    this.markers.clear()
    const { publisher, subscriber } = this.connections
    subscriber.disconnect()
    await bounded(publisher.quit(), 1000, 'closing the Redis publisher').catch(() => {})
    publisher.disconnect()
  }
}

/**
 * Create the Redis channel layer, on one redis-server or on a Redis Cluster. Rejects with
 * FST_CHANX_CHANNEL_LAYER_UNREACHABLE when Redis does not answer within `connectTimeout` (a refused
 * connection fails at once), having closed what it opened.
 */
export async function createRedisLayer (target: RedisLayerTarget, options: RedisLayerOptions = {}): Promise<RedisLayer> {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('redis layer options must be an object')
  const prefix = options.prefix ?? 'chanx:'
  if (typeof prefix !== 'string') throw new InvalidOptionError('redis.prefix must be a string')
  if (prefix.includes('{') || prefix.includes('}')) {
    throw new InvalidOptionError('redis.prefix may not contain "{" or "}": the channel after it is the Redis Cluster hash tag')
  }
  const resolved: Required<RedisLayerOptions> = {
    prefix,
    connectTimeout: positive(options.connectTimeout, 'redis.connectTimeout', 5000),
    subscribeTimeout: positive(options.subscribeTimeout, 'redis.subscribeTimeout', 5000),
    publishTimeout: positive(options.publishTimeout, 'redis.publishTimeout', 3000),
    logger: options.logger ?? silentLogger
  }
  return new RedisLayer(await openConnections(target, resolved.connectTimeout), resolved)
}
