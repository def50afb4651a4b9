import { test } from 'tap'
import { createServer } from 'node:net'
import { ChannelHub } from '../plugin/channels/hub'
import { createRedisLayer, type RedisClientLike } from '../plugin/channels/redis/layer'
import { Peer } from './helpers/peer'
import { RedisServer, freePort, redisSkipReason } from './helpers/redis'
import { FakeMember } from './helpers/members'

const skip = redisSkipReason()

/** Two hubs, each in its own process, over one real redis-server. */
async function cluster (t: { teardown (fn: () => unknown): void }): Promise<{ redis: RedisServer, one: Peer, two: Peer }> {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const [one, two] = await Promise.all([Peer.start(redis.url), Peer.start(redis.url)])
  t.teardown(() => Promise.all([one.stop(), two.stop()]))
  return { redis, one, two }
}

test('a broadcast from either process reaches members on both, one copy each, with the flags', { skip }, async (t) => {
  const { one, two } = await cluster(t)
  await one.call('join', { member: 'a1', userKey: 'alice', group: 'room' })
  await one.call('join', { member: 'b1', userKey: 'bob', group: 'room' })
  await two.call('join', { member: 'a2', userKey: 'alice', group: 'room' })
  await two.call('join', { member: 'a2', userKey: 'alice', group: 'other' })
  await two.call('join', { member: 'c2', userKey: null, group: 'room' })

  await one.call('broadcast', { groups: ['other', 'room'], message: { text: 'from one' }, sender: 'a1' })
  await two.waitFor((e) => e.member === 'c2' && e.event === 'message')
  await one.waitFor((e) => e.member === 'b1' && e.event === 'message')
  await two.call('broadcast', { groups: 'room', message: { text: 'from two' }, sender: 'c2', excludeSelf: false })
  await one.waitFor((e) => e.member === 'a1' && e.event === 'message')
  await two.waitFor((e) => e.member === 'c2' && e.event === 'message' && e.data!.includes('from two'))
  await new Promise((resolve) => setTimeout(resolve, 200)) // room for a duplicate to show up

  t.same(one.messagesOf('a1'), [{ text: 'from two', is_mine: false, is_current: false }], 'excludeSelf dropped the sender')
  t.same(one.messagesOf('b1'), [
    { text: 'from one', is_mine: false, is_current: false },
    { text: 'from two', is_mine: false, is_current: false }
  ])
  t.same(two.messagesOf('a2'), [
    { text: 'from one', is_mine: true, is_current: false },
    { text: 'from two', is_mine: false, is_current: false }
  ], 'one copy although in both target groups; same user in another process is "mine"')
  t.same(two.messagesOf('c2'), [
    { text: 'from one', is_mine: false, is_current: false },
    { text: 'from two', is_mine: false, is_current: true }
  ])
  t.equal(await one.call('size', { group: 'room' }), 4, 'size counts both processes')
  t.equal(await two.call('size', { group: 'other' }), 1)
  t.equal(await one.call('size', { group: 'empty' }), 0)
})

test('leaves are honoured across processes', { skip }, async (t) => {
  const { one, two } = await cluster(t)
  await one.call('join', { member: 'x', userKey: 'u1', group: 'g' })
  await two.call('join', { member: 'y', userKey: 'u2', group: 'g' })
  await two.call('join', { member: 'z', userKey: 'u3', group: 'g' })
  await two.call('leave', { member: 'y', group: 'g' })
  await two.call('leaveAll', { member: 'z' })
  await one.call('broadcast', { groups: 'g', message: { n: 1 } })
  await one.call('join', { member: 'x', userKey: 'u1', group: 'probe' })
  await two.call('join', { member: 'w', userKey: 'u4', group: 'probe' })
  await one.call('broadcast', { groups: 'probe', message: { n: 2 } })
  await two.waitFor((e) => e.member === 'w')
  t.same(two.events.filter((e) => e.event === 'message' && e.member !== 'w'), [], 'nothing for members who left')
  t.equal(await one.call('size', { group: 'g' }), 1)
})

test('sendToUser and disconnectUser reach the user\'s sockets in every process', { skip }, async (t) => {
  const { one, two } = await cluster(t)
  await one.call('join', { member: 'a1', userKey: 'alice', group: 'g' })
  await two.call('join', { member: 'a2', userKey: 'alice', group: 'h' })
  await two.call('join', { member: 'b2', userKey: 'bob', group: 'g' })
  await one.call('sendToUser', { userKey: 'alice', message: { notice: 1 } })
  await two.waitFor((e) => e.member === 'a2')
  t.same(one.messagesOf('a1'), [{ notice: 1 }])
  t.same(two.messagesOf('a2'), [{ notice: 1 }])
  await two.call('disconnectUser', { userKey: 'alice', code: 4003, reason: 'account closed' })
  const closed = await one.waitFor((e) => e.event === 'close')
  t.same([closed.member, closed.code, closed.reason], ['a1', 4003, 'account closed'])
  const closed2 = await two.waitFor((e) => e.event === 'close')
  t.same([closed2.member, closed2.code, closed2.reason], ['a2', 4003, 'account closed'])
  t.same(two.messagesOf('b2'), [])
  t.equal(two.events.filter((e) => e.event === 'close').length, 1, 'bob stays')
})

test('channel events cross processes', { skip }, async (t) => {
  const { one, two } = await cluster(t)
  await one.call('join', { member: 'a', userKey: null, group: 'g' })
  await two.call('join', { member: 'b', userKey: null, group: 'g' })
  await one.call('sendEvent', { groups: ['g'], name: 'refresh', payload: { v: 1 } })
  const e = await two.waitFor((ev) => ev.event === 'event')
  t.same([e.member, e.name, e.payload], ['b', 'refresh', { v: 1 }])
  t.same(one.events.filter((ev) => ev.event === 'event').map((ev) => ev.member), ['a'])
})

test('a Redis restart in the middle is survived: groups are resubscribed and broadcasts flow again', { skip }, async (t) => {
  const { redis, one, two } = await cluster(t)
  await one.call('join', { member: 'a', userKey: 'alice', group: 'room' })
  await two.call('join', { member: 'b', userKey: 'bob', group: 'room' })
  await one.call('broadcast', { groups: 'room', message: { n: 'before' } })
  await two.waitFor((e) => e.member === 'b' && e.data!.includes('before'))

  await redis.stop()
  // At-most-once: a broadcast while Redis is down reaches local members and fails to publish.
  await t.rejects(one.call('broadcast', { groups: 'room', message: { n: 'during' } }), { code: 'FST_CHANX_CHANNEL_LAYER_PUBLISH_FAILED' })
  await redis.restart()

  // Both layers reconnect and resubscribe on their own; probe until a broadcast from each side arrives.
  const deadline = Date.now() + 10000
  let probe = 0
  for (const [from, to, member] of [[one, two, 'b'], [two, one, 'a']] as const) {
    for (;;) {
      t.ok(Date.now() < deadline, 'recovered within 10 s') || (() => { throw new Error('no recovery') })()
      const text = `probe-${++probe}`
      await from.call('broadcast', { groups: 'room', message: { n: text } }).catch(() => {})
      const got = await to.waitFor((e) => e.member === member && e.data!.includes(text), 300).catch(() => null)
      if (got !== null) break
    }
  }
  await one.call('broadcast', { groups: 'room', message: { n: 'after' } })
  await two.call('broadcast', { groups: 'room', message: { n: 'after2' } })
  await two.waitFor((e) => e.member === 'b' && e.data!.includes('"after"'))
  await one.waitFor((e) => e.member === 'a' && e.data!.includes('after2'))
  t.notOk(two.events.some((e) => e.data?.includes('during')), 'nothing replayed from the outage')
  t.equal(await one.call('size', { group: 'room' }), 2, 'both processes answer after recovery')
  t.ok(one.events.some((e) => e.event === 'log' && /reconnected/.test(e.msg ?? '')), 'the reconnection is logged')
})

test('an unreachable Redis fails creation fast with a coded error naming the URL without its password', { skip }, async (t) => {
  const port = await freePort() // nothing listens: connection refused
  const started = Date.now()
  await t.rejects(createRedisLayer({ url: `redis://:hunter2@127.0.0.1:${port}` }), {
    code: 'FST_CHANX_CHANNEL_LAYER_UNREACHABLE',
    message: new RegExp(`redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}`)
  })
  t.ok(Date.now() - started < 3000, 'refused at once')
})

test('a Redis that accepts but never answers fails creation after connectTimeout', { skip }, async (t) => {
  const sockets = new Set<import('node:net').Socket>()
  const silent = createServer((s) => { sockets.add(s) })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of sockets) s.destroy(); silent.close() })
  const { port } = silent.address() as { port: number }
  const started = Date.now()
  await t.rejects(createRedisLayer({ url: `redis://127.0.0.1:${port}` }, { connectTimeout: 300 }), { code: 'FST_CHANX_CHANNEL_LAYER_UNREACHABLE' })
  t.ok(Date.now() - started < 2500, 'bounded by connectTimeout')
})

test('an existing ioredis client (or @fastify/redis instance) is used to publish and duplicated to subscribe', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const { Redis } = await import('ioredis')
  const client = new Redis(redis.url) as unknown as RedisClientLike & { quit (): Promise<unknown> }
  t.teardown(() => client.quit())
  const hubA = new ChannelHub({ layer: await createRedisLayer(client) })
  const hubB = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }, { prefix: 'chanx:' }) })
  t.teardown(async () => { await hubA.close(); await hubB.close() })
  const m = new FakeMember('u')
  await hubB.join(m, 'g')
  await hubA.broadcast('g', { hi: 1 })
  const deadline = Date.now() + 3000
  while (m.received.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(m.messages, [{ hi: 1, is_mine: false, is_current: false }])
  await hubA.close()
  t.equal(client.status, 'ready', 'the caller\'s client is left open')
  await t.rejects(createRedisLayer({ nope: 1 } as never), { code: 'FST_CHANX_INVALID_OPTION' })
  await t.rejects(createRedisLayer({ url: redis.url }, { connectTimeout: -1 }), { code: 'FST_CHANX_INVALID_OPTION', message: /redis\.connectTimeout/ })
})

test('size() works again after Redis recovers even when its first call was made during the outage', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const hub = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }, { subscribeTimeout: 300 }), sizeTimeout: 300 })
  t.teardown(() => hub.close())
  await hub.join(new FakeMember('u'), 'g')
  await redis.stop()
  await t.rejects(hub.size('g'), { code: 'FST_CHANX_CHANNEL_LAYER_TIMEOUT' })
  await redis.restart()
  const deadline = Date.now() + 5000
  let n: number | null = null
  while (n === null && Date.now() < deadline) {
    n = await hub.size('g').catch(() => null)
    if (n === null) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(n, 1, 'the reply channel is subscribed again, not a cached failure')
})

test('a join during an outage fails within subscribeTimeout and leaves no subscription behind', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const hub = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }, { subscribeTimeout: 300 }) })
  t.teardown(() => hub.close())
  const m = new FakeMember('u')
  await redis.stop()
  const started = Date.now()
  await t.rejects(hub.join(m, 'late'), { code: 'FST_CHANX_CHANNEL_LAYER_TIMEOUT' })
  t.ok(Date.now() - started < 600, 'one subscribeTimeout, not two')
  t.same(hub.groupsOf(m), [])
  t.equal(hub.localSize('late'), 0)
  await redis.restart()
  const { Redis } = await import('ioredis')
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  // The SUBSCRIBE queued during the outage is followed by its UNSUBSCRIBE once the subscriber reconnects.
  const deadline = Date.now() + 5000
  let numsub: unknown[] = []
  while (Date.now() < deadline) {
    numsub = await admin.pubsub('NUMSUB', 'chanx:{g:late}') as unknown[]
    if (numsub[1] === 0 && (await hub.layer.publish('probe', 'x').catch(() => -1)) >= 0) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  await new Promise((resolve) => setTimeout(resolve, 300))
  numsub = await admin.pubsub('NUMSUB', 'chanx:{g:late}') as unknown[]
  t.same(numsub, ['chanx:{g:late}', 0])
})

test('with a caller\'s client, a broadcast during an outage fails at once and is not replayed after recovery', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const { Redis } = await import('ioredis')
  const client = new Redis(redis.url) // offline queue on, as an @fastify/redis instance has by default
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  const sender = new ChannelHub({ layer: await createRedisLayer(client as unknown as RedisClientLike) })
  const receiver = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }) })
  t.teardown(async () => { await sender.close(); await receiver.close() })
  const m = new FakeMember('u')
  await receiver.join(m, 'g')
  await redis.stop()
  await t.rejects(sender.broadcast('g', { n: 'during' }), { code: 'FST_CHANX_CHANNEL_LAYER_PUBLISH_FAILED' })
  await redis.restart()
  const deadline = Date.now() + 5000
  let i = 0
  while (!m.received.some((r) => r.includes('probe')) && Date.now() < deadline) {
    await sender.broadcast('g', { n: 'probe' + ++i }).catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.ok(m.received.some((r) => r.includes('probe')), 'flows again after recovery')
  t.notOk(m.received.some((r) => r.includes('during')), 'nothing replayed from the outage')
})
