import { DependencyChangedError } from '../../core/errors'
import { installedVersion } from '../../core/versions'

/**
 * Every place fastify-chanx reaches into ioredis's private parts, and why, under the policy written in
 * core/ws-internals.ts's header. Nothing else under plugin/ touches ioredis beyond its public API. The one
 * kept is used on a Redis Cluster only, and qualifies as documented behaviour with no public way:
 *
 * - `refreshSlotsCache`, replaced per cluster connection by a throttled version: during a failover ioredis 6
 *   refreshes its slot map in a tight loop (below), and there is no option to space these refreshes
 *   (docs/broadcast.md: a failover does not storm the cluster). Canary (`checkSlotRefreshThrottled`, at
 *   registration): the method exists, and ioredis's own connect went through the throttle; else
 *   FST_CHANX_DEPENDENCY_CHANGED naming ioredis and its version fails registration.
 *
 * The recovery barrier used to ping the cluster subscriber's private `shardedSubscribers` connections; a ping
 * woke idle sharded subscribers and made ioredis rebuild them. It now publishes a marker on each channel and
 * waits for its echo (RedisLayer.barrier), through the public API only.
 */

function ioredisChanged (what: string): Error {
  return new DependencyChangedError('ioredis', installedVersion('ioredis'), what)
}

/** Cluster connections whose own slot refreshes have gone through the throttle. */
const throttled = new WeakSet<object>()

/**
 * The canary of the throttle: once a cluster connection is ready, ioredis has refreshed its slot map at
 * least once (it does so to connect); if that refresh did not go through the throttle, ioredis no longer
 * calls the method the throttle replaces, and a failover would storm the cluster again, silently.
 */
export function checkSlotRefreshThrottled (client: object): void {
  if (!throttled.has(client)) throw ioredisChanged('a Cluster connected without calling its refreshSlotsCache method, which fastify-chanx throttles')
}

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
  if (typeof original !== 'function') throw ioredisChanged('a Cluster has no refreshSlotsCache method to throttle')
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
      throttled.add(client)
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
