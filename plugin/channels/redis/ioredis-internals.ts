/**
 * Every place fastify-chanx reaches into ioredis's private parts, and why (as core/ws-internals.ts does for ws).
 * Nothing else under plugin/ touches ioredis beyond its public API.
 *
 * - `refreshSlotsCache`, replaced per cluster connection by a throttled version: during a failover ioredis 6
 *   refreshes its slot map in a tight loop (below). There is no option to space these refreshes.
 * - The cluster subscriber's `shardedSubscribers` group, whose per-primary connections the recovery barrier
 *   pings: ioredis exposes no way to reach the connection that carries a sharded channel.
 */

export interface Pingable { readonly status: string, ping (): Promise<unknown> }

/** At most one CLUSTER SLOTS per this many ms per connection. */
const SLOT_REFRESH_INTERVAL = 500

/**
 * Space out a cluster client's slot-map refreshes. During a failover ioredis 6 refreshes once per failed
 * attempt to reach the dead primary (its sharded subscriber reconnects at once on every refresh, and the
 * publisher refreshes on every MOVED or failed publish): a loop of about a hundred CLUSTER SLOTS a second per
 * process until the replica is promoted. Here the refreshes asked for within the interval run together
 * at its end, with every callback; the first runs at once.
 */
export function throttleSlotRefresh (client: object): void {
  const original = (client as { refreshSlotsCache?: (callback?: (err?: Error) => void) => void }).refreshSlotsCache
  if (typeof original !== 'function') return
  let last = 0
  let timer: NodeJS.Timeout | null = null
  let callbacks: Array<(err?: Error) => void> = []
  const run = (): void => {
    timer = null
    last = Date.now()
    const waiting = callbacks
    callbacks = []
    original.call(client, (err?: Error) => { for (const callback of waiting) callback(err) })
  }
  Object.defineProperty(client, 'refreshSlotsCache', {
    configurable: true,
    writable: true,
    value (callback?: (err?: Error) => void): void {
      if (typeof callback === 'function') callbacks.push(callback)
      if (timer !== null) return
      const wait = last + SLOT_REFRESH_INTERVAL - Date.now()
      if (wait <= 0) run()
      else {
        timer = setTimeout(run, wait)
        timer.unref()
      }
    }
  })
}

/**
 * A PING on each of a Cluster subscriber's sharded subscribers (ioredis's own connections, one per primary,
 * reached through its ClusterSubscriberGroup). Rejects if that shape ever moves, or a subscriber has no
 * connection.
 */
export function pingShardedSubscribers (subscriber: object): Promise<unknown> {
  const group = (subscriber as unknown as { shardedSubscribers?: { shardedSubscribers?: unknown } })
    .shardedSubscribers?.shardedSubscribers
  if (!(group instanceof Map)) return Promise.reject(new Error('ioredis Cluster has no sharded subscribers to reach'))
  const pings: Promise<unknown>[] = []
  for (const sharded of group.values()) {
    const instance = (sharded as { getInstance?: () => Pingable | null }).getInstance?.()
    if (instance == null) return Promise.reject(new Error('a sharded subscriber has no connection'))
    pings.push(instance.ping())
  }
  return Promise.all(pings)
}
