import { test } from 'tap'
import { Redis } from 'ioredis'
import { buildRecoveryApp, listen, openClient, publish, TcpProxy, until } from './helpers/recovery'
import { RedisServer, redisSkipReason } from './helpers/redis'

const skip = redisSkipReason()

const HISTORY = { size: 10_000, maxAge: 60_000 }

/** Every `n` at most once and in order, and whether all of 0..count-1 arrived. */
function check (ns: number[], count: number): { ordered: boolean, complete: boolean } {
  let ordered = true
  for (let i = 1; i < ns.length; i++) if (ns[i]! <= ns[i - 1]!) ordered = false
  return { ordered, complete: ns.length === count && ns[0] === 0 && ns.at(-1) === count - 1 }
}

test('a Redis subscriber killed mid-stream loses nothing silently: the client resumes and the replay fills the gap', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const app = await buildRecoveryApp({ redis: redis.url, history: HISTORY })
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice')
  const opens: Array<{ reconnected: boolean, recovery?: unknown }> = []
  client.on('open', (info) => { opens.push(info) })
  await client.connect()
  const admin = new Redis(redis.port, '127.0.0.1')
  t.teardown(() => admin.disconnect())

  const COUNT = 600
  const sending = publish((n) => app.chanx.broadcast('feed', { action: 'tick', payload: { n } }).catch(() => {}), COUNT, 300)
  await until(() => messages.length >= 60, '60 ticks')
  // Every pub/sub connection of this redis-server is the app's subscriber.
  t.ok(Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')) >= 1, 'the subscriber was killed')
  await sending
  const ns = (): number[] => messages.filter((m) => m.action === 'tick').map((m) => m.payload.n as number)
  // Either everything arrives (the client resumed and was replayed the gap), or the client was told.
  const told = (): boolean => opens.some((o) => (o.recovery as { recovered?: boolean } | undefined)?.recovered === false)
  await until(() => told() || check(ns(), COUNT).complete, 'every tick, or the client told', 20_000).catch(() => {})
  const result = check(ns(), COUNT)
  t.ok(result.ordered, 'each message at most once, in order')
  t.ok(result.complete || told(), `no silent gap (received ${ns().length} of ${COUNT}, told: ${told()})`)
  t.ok(opens.length >= 2, 'the client was made to resume')
})

test('a stream that goes quiet while the subscriber is away is checked on resubscription: the client resumes', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const app = await buildRecoveryApp({ redis: redis.url, history: HISTORY })
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice')
  const opens: Array<{ reconnected: boolean, recovery?: unknown }> = []
  client.on('open', (info) => { opens.push(info) })
  await client.connect()
  const admin = new Redis(redis.port, '127.0.0.1')
  t.teardown(() => admin.disconnect())
  await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 0 } })
  await until(() => messages.length === 1, 'the first tick')

  // Published while the subscriber is away, and nothing after: no later offset reveals the gap.
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  for (let n = 1; n <= 5; n++) await app.chanx.broadcast('feed', { action: 'tick', payload: { n } })
  await until(() => messages.length === 6, 'every tick', 15_000).catch(() => {})
  t.same(messages.map((m) => m.payload.n), [0, 1, 2, 3, 4, 5], 'every message once, in order')
  t.ok(opens.length >= 2, 'the client was made to resume')
})
