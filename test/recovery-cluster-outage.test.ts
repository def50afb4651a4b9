import tap, { test, type Test } from 'tap'
import { ChannelHub } from '../plugin/channels/hub'
import { createHistoryStore } from '../plugin/channels/history/setup'
import { createRedisLayer, type RedisLayer } from '../plugin/channels/redis/layer'
import { RedisCluster, redisClusterSkipReason } from './helpers/redis-cluster'
import { FakeMember } from './helpers/members'

const skip = redisClusterSkipReason()
// A whole cluster restarted and reconnected took 5-15 s alone and up to 30 s with both cores loaded.
tap.setTimeout(120_000)

/** A 3-primary cluster of the test's own, and a hub with history on it (layer publishTimeout `publishTimeout`). */
async function historyHubOnCluster (t: Test, publishTimeout: number): Promise<{ cluster: RedisCluster, layer: RedisLayer, hub: ChannelHub }> {
  const cluster = await RedisCluster.start({ replicas: 0 })
  t.teardown(() => cluster.stop())
  const layer = await createRedisLayer({ cluster: cluster.nodes }, { publishTimeout })
  const hub = new ChannelHub({ layer })
  t.teardown(() => hub.close())
  hub.useHistory(createHistoryStore(layer, { size: 100, maxAge: 60_000 }))
  return { cluster, layer, hub }
}

async function until (check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

test('a Redis Cluster outage: a history broadcast that rejected is never stored nor delivered after recovery', { skip, timeout: 100_000 }, async (t) => {
  const { cluster, layer, hub } = await historyHubOnCluster(t, 1000)
  const member = new FakeMember('bob')
  await hub.join(member, 'room')
  await hub.broadcast('room', { n: 1 })
  await until(() => member.received.length === 1, 'the first copy')

  for (const port of cluster.ports) await cluster.kill(port)
  const publisher = (layer as RedisLayer).redis.client as { status: string }
  await until(() => publisher.status !== 'ready', 'the publisher to see the outage')
  const rejected = await hub.broadcast('room', { n: 2 }).then(() => null, (err: { code?: string, outcome?: string }) => err)
  t.ok(rejected !== null, `the caller is told it failed (${String(rejected?.code)})`)
  t.equal(rejected?.outcome, 'not_sent', 'and that Redis never ran it')

  // Same ports, same nodes.conf: the cluster comes back (empty) and ioredis reconnects.
  for (const port of cluster.ports) await (cluster as unknown as { launch (port: number): Promise<void> }).launch(port)
  await until(async () => publisher.status === 'ready' && await hub.history!.barrier(['g:room']).then(() => true, () => false), 'the cluster back', 45_000)
  // Until one broadcast made after recovery comes back (the sharded subscriber resubscribes on its own time).
  let n = 2
  await until(async () => {
    await hub.broadcast('room', { n: ++n }).catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 200))
    return member.messages.some((m) => (m.n as number) > 2)
  }, 'a copy after recovery')
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.notOk(member.messages.some((m) => m.n === 2), 'the rejected broadcast was never delivered')
  const position = await hub.history!.position('g:room')
  const read = await hub.history!.read('g:room', { offset: 0, epoch: position.epoch })
  t.notOk(read.entries?.some((e) => JSON.parse(e.body).n === 2), 'nor kept')
})

test('a Cluster broadcast to two groups on different shards, one shard down: the rejection says per group what happened (err.groups)', { skip }, async (t) => {
  const { cluster, hub } = await historyHubOnCluster(t, 500)
  // Two groups whose channels hash to different primaries (a name's slot is its hash tag's, prefix aside).
  const first = 'up'
  const upPort = await cluster.primaryOf(`{g:${first}}`)
  let second = ''
  for (let i = 0; second === ''; i++) if (await cluster.primaryOf(`{g:down${i}}`) !== upPort) second = `down${i}`
  const downPort = await cluster.primaryOf(`{g:${second}}`)
  const reader = new FakeMember('reader')
  await hub.join(reader, first)
  await hub.broadcast([first, second], { n: 1 })
  await until(() => reader.received.length === 1, 'the first copy')

  await cluster.kill(downPort)
  const err = await hub.broadcast([first, second], { n: 2 }).then(() => null, (err: { code?: string, groups?: Record<string, string> }) => err)
  t.ok(err !== null, 'the broadcast rejects')
  t.equal(err?.groups?.[first], 'published', `the live shard's group is reported published (${String(err?.code)})`)
  t.ok(err?.groups?.[second] === 'unknown' || err?.groups?.[second] === 'not_sent', `the dead shard's group is reported ${String(err?.groups?.[second])}`)
  await until(() => reader.messages.some((m) => m.n === 2), 'the published group delivers it')
})
