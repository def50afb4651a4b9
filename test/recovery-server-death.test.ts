import { test } from 'tap'
import { buildRecoveryApp, listen, nextOpen, openClient, publish, TcpProxy, until } from './helpers/recovery'
import { RedisServer, redisSkipReason } from './helpers/redis'
import { startChildApp, startChildProcess } from './helpers/child-app'

const skip = redisSkipReason()

const HISTORY = { size: 20_000, maxAge: 60_000 }

test('a client whose process is SIGKILLed mid-stream resumes on another process: every message once, in order, recovered', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const env = { REDIS_URL: redis.url, HISTORY: JSON.stringify(HISTORY) }
  const [first, second] = await Promise.all([
    startChildProcess(t, 'test/fixtures/recovery-app.ts', env),
    startChildApp(t, 'test/fixtures/recovery-app.ts', env)
  ])
  // The publisher is a third process on the same Redis (this one); the client never connects to it.
  const publisher = await buildRecoveryApp({ redis: redis.url, history: HISTORY })
  await listen(t, publisher)
  const proxy = await new TcpProxy(Number(new URL(first.base).port)).start()
  t.teardown(() => proxy.close())
  // The client comes back 0.5 s after the kill: about 250 messages are published meanwhile and must be replayed.
  const { client, messages } = openClient(t, publisher, proxy, 'alice', [500])
  const opens: unknown[] = []
  client.on('open', (info) => { opens.push(info.recovery) })
  await client.connect()

  const COUNT = 3000
  const sending = publish((n) => publisher.chanx.broadcast('feed', { action: 'tick', payload: { n } }), COUNT, 500)
  await until(() => messages.length >= 500, '500 ticks through the first process')
  proxy.target = Number(new URL(second).port)
  await first.stop() // SIGKILL: no close frame, no drain; the proxy drops the client's connection with it
  const killedAt = messages.length
  const info = await nextOpen(client)
  await sending
  await until(() => messages.at(-1)?.payload.n === COUNT - 1, 'the last tick', 30_000)

  const ns = messages.map((m) => m.payload.n)
  t.equal(ns.length, COUNT, 'as many messages as were sent')
  t.ok(ns.every((n, i) => n === i), 'every message once, in order')
  t.match(info, { reconnected: true, recovery: { recovered: true, reason: null, failed: {} } })
  t.equal(opens.length, 2, 'one reconnection')
  t.equal(client.recovered, true)
  t.ok(ns.length - killedAt > 0, `${ns.length - killedAt} messages after the kill`)
})
