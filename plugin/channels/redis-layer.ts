import type { ChannelLayer, ChannelListener, ChannelLogger } from './layer'
import { silentLogger } from './layer'
import {
  ChannelLayerClosedError,
  ChannelLayerPublishError,
  ChannelLayerTimeoutError,
  ChannelLayerUnreachableError,
  MissingIoredisError
} from './errors'
import { InvalidOptionError } from '../core/errors'
import type { RedisHistoryAccess } from './redis-history'

/**
 * What this layer needs of an ioredis 6 client. Declared here rather than imported so that the package's
 * types do not require ioredis, which is an optional peer: only this file loads it, and only when a Redis
 * layer is created. An @fastify/redis instance (`app.redis`) is such a client.
 */
export interface RedisClientLike {
  readonly status: string
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

/** `{ url }` (the layer opens both connections), an ioredis client, or an @fastify/redis instance. */
export type RedisLayerTarget = { url: string } | RedisClientLike

export interface RedisLayerOptions {
  /** Prepended to every Redis channel name, so several apps can share one Redis (default `'chanx:'`). */
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

// Reconnect quickly and forever once started: a restarted Redis is back within a second.
const retryStrategy = (times: number): number => Math.min(times * 100, 1000)

// The publisher never queues: a broadcast made while Redis is down fails at once instead of arriving
// minutes later (at-most-once, as Django Channels), and an in-flight PUBLISH is never sent twice.
const PUBLISHER = { lazyConnect: true, enableOfflineQueue: false, autoResendUnfulfilledCommands: false, retryStrategy }
// The subscriber queues (a SUBSCRIBE made during an outage runs on reconnection, bounded by
// subscribeTimeout) and resubscribes itself on 'ready' from the layer's own list of live channels, so
// what it listens to after a restart is exactly what the hub wants at that moment.
const SUBSCRIBER = { lazyConnect: true, autoResubscribe: false, maxRetriesPerRequest: null, retryStrategy }

function isClient (value: unknown): value is RedisClientLike {
  return typeof value === 'object' && value !== null &&
    typeof (value as RedisClientLike).duplicate === 'function' &&
    typeof (value as RedisClientLike).publish === 'function'
}

function loadIoredis (): new (url: string, options: object) => RedisClientLike {
  try {
    // Required lazily: ioredis is an optional peer and the in-process layer must work without it.
    const mod = require('ioredis')
    return mod.Redis ?? mod.default ?? mod
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

function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new ChannelLayerTimeoutError(what, ms)), ms)
    timer.unref()
    promise.then(
      (value) => { clearTimeout(timer); resolve(value) },
      (err) => { clearTimeout(timer); reject(err) }
    )
  })
}

/** Resolve once `client` is ready; reject on its first error, its end, or after `ms`. */
function waitReady (client: RedisClientLike, ms: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer)
      client.removeListener('ready', onReady)
      client.removeListener('error', onError)
      client.removeListener('end', onEnd)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onReady = (): void => done()
    const onError = (err: Error): void => done(err)
    const onEnd = (): void => done(new Error('connection ended'))
    const timer = setTimeout(() => done(new Error(`no answer within ${ms} ms`)), ms)
    timer.unref()
    client.on('ready', onReady)
    client.on('error', onError)
    client.on('end', onEnd)
    if (client.status === 'wait') client.connect().catch(() => {})
  })
}

function positive (value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidOptionError(`${name} must be a positive number of milliseconds`)
  }
  return value
}

/**
 * Pub/sub over Redis: one dedicated subscriber connection and one publisher connection per process, one
 * Redis subscription per live channel per process (the hub refcounts members), never one per socket.
 */
export class RedisLayer implements ChannelLayer {
  readonly name = 'redis'
  private readonly publisher: RedisClientLike
  private readonly subscriber: RedisClientLike
  private readonly ownsPublisher: boolean
  private readonly prefix: string
  private readonly subscribeTimeout: number
  private readonly publishTimeout: number
  private readonly logger: ChannelLogger
  /** Channels the hub wants, unprefixed: what is resubscribed after a reconnection. */
  private readonly live = new Set<string>()
  private listener: ChannelListener | null = null
  private closed = false
  private down = false

  /** Use {@link createRedisLayer}, which waits for both connections. */
  constructor (publisher: RedisClientLike, subscriber: RedisClientLike, ownsPublisher: boolean, options: Required<RedisLayerOptions>) {
    this.publisher = publisher
    this.subscriber = subscriber
    this.ownsPublisher = ownsPublisher
    this.prefix = options.prefix
    this.subscribeTimeout = options.subscribeTimeout
    this.publishTimeout = options.publishTimeout
    this.logger = options.logger
    subscriber.on('message', this.onMessage.bind(this))
    subscriber.on('ready', this.onReady.bind(this))
    subscriber.on('error', this.onError.bind(this, 'subscriber'))
    // A server that restarts closes the connection without any error: 'close' is the reliable signal.
    subscriber.on('close', this.onError.bind(this, 'subscriber', new Error('connection closed')))
    if (ownsPublisher) publisher.on('error', this.onError.bind(this, 'publisher'))
  }

  /** Redis is unreachable right now (between a connection error and the next 'ready'). */
  get reconnecting (): boolean {
    return this.down
  }

  setListener (listener: ChannelListener): void {
    this.listener = listener
  }

  private onMessage (channel: string, message: string): void {
    if (this.listener === null || !channel.startsWith(this.prefix)) return
    this.listener(channel.slice(this.prefix.length), message)
  }

  private onError (which: string, err: Error): void {
    if (this.closed) return
    // One line per outage, not one per retry.
    if (!this.down) this.logger.warn({ err, connection: which }, 'fastify-chanx: Redis channel layer connection lost; reconnecting')
    this.down = true
  }

  private onReady (): void {
    if (this.closed) return
    if (this.down) this.logger.warn({ channels: this.live.size }, 'fastify-chanx: Redis channel layer reconnected; resubscribing')
    this.down = false
    if (this.live.size === 0) return
    const channels = [...this.live].map((c) => this.prefix + c)
    this.subscriber.subscribe(...channels).catch((err: Error) => {
      this.logger.error({ err }, 'fastify-chanx: Redis channel layer could not resubscribe')
    })
  }

  async subscribe (channel: string): Promise<void> {
    if (this.closed) throw new ChannelLayerClosedError()
    this.live.add(channel)
    await withTimeout(this.subscriber.subscribe(this.prefix + channel), this.subscribeTimeout, `subscribing to "${channel}"`)
  }

  async unsubscribe (channel: string): Promise<void> {
    if (!this.live.delete(channel) || this.closed) return
    // A failed UNSUBSCRIBE only leaves envelopes the hub ignores, and a reconnection drops it anyway.
    await withTimeout(this.subscriber.unsubscribe(this.prefix + channel), this.subscribeTimeout, `unsubscribing from "${channel}"`)
      .catch((err: Error) => this.logger.warn({ err, channel }, 'fastify-chanx: Redis channel layer could not unsubscribe'))
  }

  publish (channel: string, envelope: string): Promise<number> {
    if (this.closed) return Promise.reject(new ChannelLayerClosedError())
    const reply = this.publisher.publish(this.prefix + channel, envelope).catch((err: Error) => {
      throw new ChannelLayerPublishError(`"${channel}"`, err?.message ?? String(err), { cause: err })
    })
    // Settled by Redis's answer or by the timeout, whichever comes first: ioredis never settles a
    // command that was in flight when the connection broke, and a hung Redis never answers.
    return withTimeout(reply, this.publishTimeout, `publishing to "${channel}"`)
  }

  /**
   * What the history over Redis (redis-history.ts, issue 17) needs: the publisher to run its scripts on,
   * the layer's names, and a round trip on the subscriber connection. `pubsub(channel)` is the name this
   * layer subscribes to; keys of a channel come from redisName(prefix, channel, suffix), in its hash slot.
   */
  historyAccess (): RedisHistoryAccess {
    return {
      client: this.publisher,
      prefix: this.prefix,
      publishCommand: 'PUBLISH',
      publishTimeout: this.publishTimeout,
      pubsub: (channel) => this.prefix + channel,
      // Answered after every message Redis pushed to this connection before it: a PING is valid in subscriber
      // mode. One subscriber connection here; on a Cluster, one PING per shard of `channels`.
      barrier: () => withTimeout((this.subscriber as unknown as { ping (): Promise<unknown> }).ping(), this.subscribeTimeout, 'a subscriber round trip')
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.listener = null
    this.live.clear()
    this.subscriber.disconnect()
    if (this.ownsPublisher) {
      await withTimeout(this.publisher.quit(), 1000, 'closing the Redis publisher').catch(() => {})
      this.publisher.disconnect()
    }
  }
}

/**
 * Create the Redis channel layer. Rejects with FST_CHANX_CHANNEL_LAYER_UNREACHABLE when Redis does not
 * answer within `connectTimeout` (a refused connection fails at once), having closed what it opened.
 */
export async function createRedisLayer (target: RedisLayerTarget, options: RedisLayerOptions = {}): Promise<RedisLayer> {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('redis layer options must be an object')
  const prefix = options.prefix ?? 'chanx:'
  if (typeof prefix !== 'string') throw new InvalidOptionError('redis.prefix must be a string')
  const resolved: Required<RedisLayerOptions> = {
    prefix,
    connectTimeout: positive(options.connectTimeout, 'redis.connectTimeout', 5000),
    subscribeTimeout: positive(options.subscribeTimeout, 'redis.subscribeTimeout', 5000),
    publishTimeout: positive(options.publishTimeout, 'redis.publishTimeout', 3000),
    logger: options.logger ?? silentLogger
  }

  let publisher: RedisClientLike
  let subscriber: RedisClientLike
  let ownsPublisher: boolean
  let where: string
  if (isClient(target)) {
    // Two duplicates, the caller's client left as it is (and never closed here): a subscriber, since a
    // connection in subscriber mode can run nothing else, and a publisher without the offline queue the
    // caller's client likely has, which would replay a broadcast made during an outage after recovery.
    publisher = target.duplicate({ ...PUBLISHER, connectTimeout: resolved.connectTimeout })
    subscriber = target.duplicate({ ...SUBSCRIBER, connectTimeout: resolved.connectTimeout })
    ownsPublisher = true
    where = 'the given ioredis client\'s server'
  } else if (typeof target === 'object' && target !== null && typeof (target as { url?: unknown }).url === 'string') {
    const Redis = loadIoredis()
    const url = (target as { url: string }).url
    publisher = new Redis(url, { ...PUBLISHER, connectTimeout: resolved.connectTimeout })
    subscriber = new Redis(url, { ...SUBSCRIBER, connectTimeout: resolved.connectTimeout })
    ownsPublisher = true
    where = redact(url)
  } else {
    throw new InvalidOptionError('redis must be { url: "redis://…" }, an ioredis client, or an @fastify/redis instance')
  }

  try {
    await Promise.all([waitReady(publisher, resolved.connectTimeout), waitReady(subscriber, resolved.connectTimeout)])
  } catch (err) {
    subscriber.disconnect()
    if (ownsPublisher) publisher.disconnect()
    throw new ChannelLayerUnreachableError(where, (err as Error).message, { cause: err })
  }
  return new RedisLayer(publisher, subscriber, ownsPublisher, resolved)
}
