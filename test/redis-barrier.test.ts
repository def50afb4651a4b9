import { test } from 'tap'
import { Redis } from 'ioredis'
import { createRedisLayer, type RedisLayer } from '../plugin/channels/redis/layer'
import type { ChannelLogger } from '../plugin/channels/layer'
import { RedisCluster, redisClusterSkipReason } from './helpers/redis-cluster'
import { RedisServer, redisSkipReason } from './helpers/redis'

// The recovery barrier (RedisLayer.barrier, used by the replay): a marker published on each channel and
// waited for as this process's own echo, through ioredis's public API only.

const skip = redisSkipReason()
const skipCluster = redisClusterSkipReason()

function recordingLogger (lines: string[]): ChannelLogger {
  return { warn (_: object, msg?: string) { lines.push(msg ?? '') }, error (_: object, msg?: string) { lines.push(msg ?? '') } }
}

async function eventually (check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Hub channels `g:<name>` whose Redis channels fall on at least `shards` different primaries. */
async function spread (cluster: RedisCluster, shards: number): Promise<Map<number, string>> {
  const byShard = new Map<number, string>()
  for (let i = 0; byShard.size < shards; i++) {
    const port = await cluster.primaryOf(`chanx:{g:room-${i}}`)
    if (!byShard.has(port)) byShard.set(port, `g:room-${i}`)
  }
  return byShard
}

test('on a 3-primary cluster, a barrier on an idle shard logs no lost connection and the next subscription there succeeds', { skip: skipCluster, timeout: 60_000 }, async (t) => {
  const cluster = await RedisCluster.start({ replicas: 0 })
  t.teardown(() => cluster.stop())
  const [busy, idle, third] = [...(await spread(cluster, 3)).values()] as [string, string, string]
  const lines: string[] = []
  const layer = await createRedisLayer({ cluster: cluster.nodes }, { logger: recordingLogger(lines), subscribeTimeout: 3000 })
  t.teardown(() => layer.close())
  const received: string[] = []
  layer.setListener((channel, text) => received.push(channel + ' ' + text))
  await layer.subscribe(busy)

  // Two shards have no subscription at all: the barrier must not touch their subscriber connections.
  // Through the interface the history store uses (RedisHistory.barrier).
  const { barrier } = layer.historyAccess()
  await barrier([busy])
  await barrier([busy, idle, third])
  await layer.subscribe(idle)
  await layer.subscribe(third)
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.same(lines, [], 'nothing was logged: no subscriber was rebuilt')
  t.notOk(layer.reconnecting, 'the layer never thought itself down')

  const publisher = await createRedisLayer({ cluster: cluster.nodes })
  t.teardown(() => publisher.close())
  for (const channel of [busy, idle, third]) await publisher.publish(channel, `{"to":"${channel}"}`)
  await eventually(() => received.length === 3, 'one message on each shard')
  t.same(received.sort(), [busy, idle, third].map((c) => `${c} {"to":"${c}"}`).sort(), 'every shard delivers, and no marker reached the listener')
})

test('on a cluster, a barrier resolves only after every publication made before it was received', { skip: skipCluster, timeout: 60_000 }, async (t) => {
  const cluster = await RedisCluster.start({ replicas: 0 })
  t.teardown(() => cluster.stop())
  const channels = [...(await spread(cluster, 3)).values()]
  const [sender, receiver] = await Promise.all([createRedisLayer({ cluster: cluster.nodes }), createRedisLayer({ cluster: cluster.nodes })])
  t.teardown(async () => { await sender.close(); await receiver.close() })
  const heard: string[] = []
  const senderHeard: string[] = []
  receiver.setListener((channel, text) => heard.push(channel + ' ' + text))
  sender.setListener((channel, text) => senderHeard.push(channel + ' ' + text))
  for (const channel of channels) {
    await receiver.subscribe(channel)
    await sender.subscribe(channel)
  }
  let early = 0
  for (let round = 0; round < 100; round++) {
    const before = heard.length
    // Large enough that Redis's writes to the subscriber are not already read when the reply is.
    const body = `{"round":${round},"pad":"${'x'.repeat(20_000)}"}`
    await Promise.all(channels.map((channel) => sender.publish(channel, body)))
    if (heard.length === before + channels.length) early++
    await receiver.barrier(channels)
    t.equal(heard.length, before + channels.length, `round ${round}: every earlier publication was received`)
    if (heard.length !== before + channels.length) break
  }
  t.comment(`${early} of 100 rounds had every copy before the barrier was even asked for`)
  await sender.barrier(channels)
  t.notOk([...heard, ...senderHeard].some((line) => line.includes('!chanx-barrier')), 'markers never reach a listener, ours or another process\'s')
})

test('on one node, a barrier orders, drops other processes\' and forged markers, and fails in time when Redis does not answer', { skip, timeout: 30_000 }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const layers: RedisLayer[] = []
  t.teardown(() => Promise.all(layers.map((layer) => layer.close())))
  const open = async (): Promise<RedisLayer> => {
    const layer = await createRedisLayer({ url: redis.url }, { subscribeTimeout: 1000, connectTimeout: 1000 })
    layers.push(layer)
    return layer
  }
  const [one, two] = await Promise.all([open(), open()])
  const heard: string[] = []
  const heardByTwo: string[] = []
  one.setListener((channel, text) => heard.push(channel + ' ' + text))
  two.setListener((channel, text) => heardByTwo.push(channel + ' ' + text))
  for (const channel of ['g:a', 'g:b']) {
    await one.subscribe(channel)
    await two.subscribe(channel)
  }
  await t.resolves(two.barrier([]), 'no channel: nothing to wait for')
  await t.resolves(two.barrier(['g:not-subscribed']), 'a channel this layer does not receive has nothing to order')

  const admin = new Redis(redis.port, '127.0.0.1')
  t.teardown(() => admin.quit())
  await admin.publish('chanx:{g:a}', '!chanx-barrier:0123456789abcdef:1:0000000000000000:0')
  for (let i = 0; i < 50; i++) {
    await admin.publish('chanx:{g:b}', `{"i":${i}}`)
    await one.barrier(['g:a', 'g:b'])
    t.equal(heard.filter((line) => line === `g:b {"i":${i}}`).length, 1, `message ${i} arrived before the barrier resolved`)
  }
  await two.barrier(['g:a', 'g:b'])
  t.notOk([...heard, ...heardByTwo].some((line) => line.includes('!chanx-barrier')), 'neither the other layer\'s markers nor a forged one reached a listener')

  redis.pause()
  let started = Date.now()
  await t.rejects(one.barrier(['g:a']), { code: 'FST_CHANX_CHANNEL_LAYER_TIMEOUT' }, 'a hung Redis: the barrier gives up after subscribeTimeout')
  t.ok(Date.now() - started < 2500, `rejected in ${Date.now() - started} ms`)
  redis.resume()
  await t.resolves(one.barrier(['g:a']), 'and works again once Redis answers')

  await redis.stop()
  await eventually(() => one.reconnecting, 'the layer to see the loss')
  started = Date.now()
  await t.rejects(one.barrier(['g:a']), { code: 'FST_CHANX_CHANNEL_LAYER_NOT_READY' }, 'a lost subscriber: the barrier fails at once')
  t.ok(Date.now() - started < 200, `rejected in ${Date.now() - started} ms`)
})
