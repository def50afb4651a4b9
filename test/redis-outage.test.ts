import { test } from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Redis } from 'ioredis'
import { ChannelHub } from '../plugin/channels/hub'
import { Presence } from '../plugin/channels/presence'
import { createRedisLayer, type RedisLayer } from '../plugin/channels/redis/layer'
import type { PresenceEvent } from '../plugin/core/diagnostics'
import { FakeMember } from './helpers/members'
import { RedisCluster, redisClusterSkipReason } from './helpers/redis-cluster'
import { RedisServer, redisSkipReason } from './helpers/redis'

// Every command the layer or presence sends on the cluster publisher goes through one readiness-checked
// path (RedisLayerAccess.command): during an outage it fails at once and is never sent, so nothing waits in
// ioredis's offline queue to run after recovery. A publish's rejection says what its caller knows.

const skip = redisSkipReason()
const skipCluster = redisClusterSkipReason()

async function eventually (check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Start a killed node again from its cluster config file (the helper keeps it; the data is gone). */
function relaunch (cluster: RedisCluster, port: number): Promise<void> {
  return (cluster as unknown as { launch (port: number): Promise<void> }).launch(port)
}

test('during a whole-cluster outage presence writes fail at once, and none runs after recovery', { skip: skipCluster, timeout: 90_000 }, async (t) => {
  const cluster = await RedisCluster.start({ replicas: 0 })
  t.teardown(() => cluster.stop())
  const layer: RedisLayer = await createRedisLayer({ cluster: cluster.nodes }, { connectTimeout: 2000 })
  const hub = new ChannelHub({ layer })
  // A heartbeat every 20 s: only the write made during the outage could bring the entry back early.
  const presence = new Presence(hub, { ttl: 60_000 })
  t.teardown(async () => { await presence.close(); await hub.close() })
  const writes: PresenceEvent[] = []
  const onWrite = (event: unknown): void => { writes.push(event as PresenceEvent) }
  subscribe('fastify-chanx.presence', onWrite)
  t.teardown(() => unsubscribe('fastify-chanx.presence', onWrite))

  await hub.join(new FakeMember('amy'), 'room')
  await eventually(() => writes.some((w) => w.group === 'room' && w.ok), 'the first presence write')
  writes.length = 0

  const ports = [...cluster.ports]
  const everyShard = new Map<number, string>()
  for (let i = 0; everyShard.size < 3; i++) everyShard.set(await cluster.primaryOf(`chanx:{g:shard-${i}}`), `g:shard-${i}`)
  for (const port of ports) await cluster.kill(port)
  // ioredis counts the cluster down once every node connection it opened has ended, which traffic to each
  // shard shows it (a node connection never used stays 'wait' and keeps the cluster 'ready').
  await eventually(async () => {
    await Promise.all([...everyShard.values()].map((channel) => layer.publish(channel, '{}').catch(() => {})))
    return layer.redis.client.status !== 'ready'
  }, 'the publisher to see the outage')

  const started = Date.now()
  await hub.join(new FakeMember('amy'), 'room') // amy's second socket: both channels are subscribed already, the join needs no Redis
  await eventually(() => writes.some((w) => w.group === 'room'), 'the presence write to settle', 10_000)
  const write = writes.find((w) => w.group === 'room')!
  t.equal(write.ok, false, 'the write failed')
  t.equal((write.error as { code?: string } | null)?.code, 'FST_CHANX_CHANNEL_LAYER_NOT_READY', 'because the publisher is not ready')
  t.ok(Date.now() - started < 2000, `it failed at once, not after the 3 s timeout (${Date.now() - started} ms)`)
  await t.rejects(presence.get('room'), { code: 'FST_CHANX_CHANNEL_LAYER_NOT_READY' }, 'a read fails at once too')

  await Promise.all(ports.map((port) => relaunch(cluster, port)))
  await eventually(async () => {
    for (const port of ports) if (!(await cluster.command(port, 'cluster', 'info')).includes('cluster_state:ok')) return false
    return true
  }, 'the cluster to be ok again')
  await eventually(() => layer.redis.client.status === 'ready', 'the publisher to be ready again')
  const owner = await cluster.primaryOf('chanx:{g:room}:presence')
  const admin = new Redis(owner, '127.0.0.1')
  t.teardown(() => admin.quit())
  // The restarted nodes hold no data. Long enough for a queued command to have run on the reconnection;
  // well before the next heartbeat (which rewrites the entry, as it should: amy is still here).
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal(await admin.exists('chanx:{g:room}:presence'), 0, 'the write made during the outage never ran')
})

test('a publish that timed out on a hung Redis says its outcome is unknown (and it is delivered on resume); one refused as not ready never is', { skip, timeout: 30_000 }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const sender = await createRedisLayer({ url: redis.url }, { publishTimeout: 500, connectTimeout: 1000 })
  const receiver = await createRedisLayer({ url: redis.url })
  t.teardown(async () => { await sender.close(); await receiver.close() })
  const heard: string[] = []
  receiver.setListener((_channel, text) => heard.push(text))
  await receiver.subscribe('g:room')

  redis.pause()
  const started = Date.now()
  const hung = await sender.publish('g:room', '{"n":"hung"}').then(() => null, (err: unknown) => err as { code?: string, outcome?: string })
  t.equal(hung?.code, 'FST_CHANX_CHANNEL_LAYER_TIMEOUT', `the publish timed out (${Date.now() - started} ms)`)
  t.equal(hung?.outcome, 'unknown', 'and says its outcome is unknown')
  redis.resume()
  await eventually(() => heard.includes('{"n":"hung"}'), 'the timed-out publish to run once Redis resumes', 5000)
  t.pass('it was delivered after all: a retry on the timeout would have delivered it twice')

  await redis.stop()
  await eventually(() => sender.redis.client.status !== 'ready', 'the sender to see the loss')
  const refused = await sender.publish('g:room', '{"n":"refused"}').then(() => null, (err: unknown) => err as { code?: string, outcome?: string })
  t.equal(refused?.code, 'FST_CHANX_CHANNEL_LAYER_PUBLISH_FAILED', 'a publish while Redis is down is refused at once')
  t.equal(refused?.outcome, 'not_sent', 'and says it was never sent')
  await redis.restart()
  await eventually(() => sender.redis.client.status === 'ready' && !receiver.reconnecting, 'both layers to be back', 10_000)
  await sender.publish('g:room', '{"n":"after"}')
  await eventually(() => heard.includes('{"n":"after"}'), 'a publish after recovery')
  t.notOk(heard.includes('{"n":"refused"}'), 'the refused publish was never delivered')
})
