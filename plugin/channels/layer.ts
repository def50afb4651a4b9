/**
 * The one interface every channel layer implements (Django Channels' channel layer, reduced to what groups
 * need). A layer carries opaque envelope strings between the processes that share it; it knows nothing of
 * members, users or message shapes, which are the hub's business (channels/hub.ts).
 *
 * Delivery is at-most-once: an envelope published while a process is not subscribed, or while the
 * transport is down, is lost, never replayed.
 */
export interface ChannelLayer {
  /** A short name for logs and benchmarks (`'memory'`, `'redis'`). */
  readonly name: string
  /**
   * Start receiving envelopes published to `channel` by any process. Resolves once they will be received
   * (Redis: once SUBSCRIBE is acknowledged). Subscribing twice is harmless; the hub refcounts anyway.
   */
  subscribe (channel: string): Promise<void>
  /** Stop receiving `channel`. */
  unsubscribe (channel: string): Promise<void>
  /**
   * Send `envelope` to every process subscribed to `channel`, this one included. Resolves with the
   * number of processes that received it (Redis PUBLISH's reply), which cluster-wide counts rely on.
   */
  publish (channel: string, envelope: string): Promise<number>
  /** The single receiver of every incoming envelope; setting it again replaces the previous one. */
  setListener (listener: ChannelListener): void
  /**
   * Optional: `listener` is called each time the layer is subscribed again after it lost its subscriptions
   * (Redis: a reconnection of the subscriber, a cluster failover). Whatever was published meanwhile was
   * not received; a hub with history then checks its streams for gaps. Setting it again replaces it.
   */
  onResubscribed? (listener: () => void): void
  /** Release connections and subscriptions. Idempotent. */
  close (): Promise<void>
}

export type ChannelListener = (channel: string, envelope: string) => void

/** pino's shape, or anything with these two methods (Fastify's `app.log`). */
export interface ChannelLogger {
  warn (obj: object, msg?: string): void
  error (obj: object, msg?: string): void
}

export const silentLogger: ChannelLogger = { warn () {}, error () {} }

/**
 * `logger[level]({ ...fields, err }, msg)`, never throwing: a thrown value can be anything, a hostile Proxy
 * included, and a logger that reads its properties would throw from inside a catch handler, where it
 * becomes an unhandled rejection or an uncaught exception. Such a value is logged by its description.
 */
export function logSafely (logger: ChannelLogger, level: 'warn' | 'error', err: unknown, fields: object, msg: string): void {
  try {
    logger[level]({ ...fields, err }, msg)
  } catch {
    try {
      logger[level]({ ...fields, err: describeThrown(err) }, msg)
    } catch {}
  }
}

/** A short text for any thrown value, even one whose every property access throws. */
export function describeThrown (err: unknown): string {
  try {
    if (err instanceof Error) return `${err.name}: ${err.message}`
    return typeof err === 'object' && err !== null ? Object.prototype.toString.call(err) : String(err)
  } catch {
    return `an unreadable ${typeof err}`
  }
}
