import { test } from 'tap'
import { ChannelHub } from '../plugin/channels/hub'
import { createHistoryStore } from '../plugin/channels/history/setup'
import { createRedisLayer } from '../plugin/channels/redis/layer'
import { RedisCluster, redisClusterSkipReason } from './helpers/redis-cluster'
import { FakeMember } from './helpers/members'

const skip = redisClusterSkipReason()

async function until (check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

// The history script publishes with SPUBLISH from inside Lua, on the group's shard: its keys and its
// shard channel share the group's hash slot (redisName), which is what lets Redis Cluster run it.
test('history on a Redis Cluster: positioned delivery across hubs over sharded pub/sub, replay and the subscriber barrier', { skip }, async (t) => {
  const cluster = await RedisCluster.start({ replicas: 0 })
  t.teardown(() => cluster.stop())
  const limits = { size: 100, maxAge: 60_000 }
  const one = new ChannelHub({ layer: await createRedisLayer({ cluster: cluster.nodes }) })
  const two = new ChannelHub({ layer: await createRedisLayer({ cluster: cluster.nodes }) })
  t.teardown(async () => { await one.close(); await two.close() })
  one.useHistory(createHistoryStore(one.layer, limits))
  two.useHistory(createHistoryStore(two.layer, limits))

  const groups = ['lobby', 'kitchen', 'garden', 'attic', 'cellar', 'porch']
  const here = new FakeMember('bob')
  const there = new FakeMember('carol')
  for (const group of groups) {
    await one.join(here, group)
    await two.join(there, group)
  }
  const shards = new Set<number>()
  for (const group of groups) shards.add(await cluster.primaryOf(`chanx:{g:${group}}`))
  t.ok(shards.size > 1, `the groups live on ${shards.size} shards`)
  const starts = await Promise.all(groups.map((group) => two.history!.position('g:' + group)))

  for (const group of groups) await one.broadcast(group, { action: 'note', group })
  await until(() => here.received.length === groups.length && there.received.length === groups.length, 'every copy')
  for (let i = 0; i < groups.length; i++) {
    const expected = `{"action":"note","group":"${groups[i]}","chanx_pos":{"${groups[i]}":[1,"${starts[i]!.epoch}"]},"is_mine":false,"is_current":false}`
    t.ok(there.received.includes(expected), `${groups[i]}: the other hub got the positioned copy`)
    t.ok(here.received.includes(expected), `${groups[i]}: the sending hub got it back from its shard`)
  }

  const reads = await Promise.all(groups.map((group, i) => two.history!.read('g:' + group, starts[i]!)))
  t.same(reads.map((read) => read.entries?.map((entry) => entry.offset)), groups.map(() => [1]), 'each group replays its one message')
  await t.resolves(two.history!.barrier(groups.map((group) => 'g:' + group)), 'a marker comes back from every shard')
})
