import { test } from 'tap'
import { buildRecoveryApp, listen, nextOpen, openClient, publish, TcpProxy, until } from './helpers/recovery'
import { RedisServer, redisSkipReason } from './helpers/redis'
import { startChildApp } from './helpers/child-app'

const skip = redisSkipReason()

const HISTORY = { size: 20_000, maxAge: 60_000 }

test('over Redis, two processes: a stream at 1,000 a second, cut twice and resumed on the other process, arrives once, in order', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const other = await startChildApp(t, 'test/fixtures/recovery-app.ts', { REDIS_URL: redis.url, HISTORY: JSON.stringify(HISTORY) })
  const app = await buildRecoveryApp({ redis: redis.url, history: HISTORY })
  const here = await listen(t, app)
  const there = Number(new URL(other).port)
  const proxy = await new TcpProxy(here).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice', [500, 5000])
  await client.connect()

  const COUNT = 8000
  const sending = publish((n) => app.chanx.broadcast('feed', { action: 'tick', payload: { n } }), COUNT, 1000)
  await until(() => messages.length >= 500, '500 ticks')
  proxy.target = there
  proxy.cut()
  await nextOpen(client)
  await until(() => messages.length >= 2000, '2000 ticks')
  proxy.target = here
  proxy.cut()
  const cutAt = messages.length
  await nextOpen(client)
  await sending
  await until(() => messages.at(-1)?.payload.n === COUNT - 1, 'the last tick')

  const ns = messages.map((m) => m.payload.n)
  t.equal(ns.length, COUNT, 'as many messages as were sent')
  t.ok(ns.every((n, i) => n === i), 'every message once, in order')
  t.ok(ns.length - cutAt > 4000, 'the 5 s away were replayed')
  t.equal(client.recovered, true)
  t.match(messages.at(-1), { action: 'tick', is_mine: false, is_current: false, chanx_pos: { feed: [COUNT, String] } })
})
