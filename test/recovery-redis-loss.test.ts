import { test } from 'tap'
import { buildRecoveryApp, listen, nextOpen, openClient, TcpProxy, until } from './helpers/recovery'
import { RedisServer, freePort, redisSkipReason } from './helpers/redis'

const skip = redisSkipReason()

test('over Redis: window exceeded, permission revoked, then a Redis restart changes the epoch', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const access = new Map([['alice', ['feed', 'side']]])
  const app = await buildRecoveryApp({ redis: redis.url, history: { size: 5, maxAge: 60_000 } }, access)
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice')

  await client.connect()
  await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 0 } })
  await until(() => messages.length === 1, 'the first tick')
  proxy.cut()
  await new Promise((resolve) => client.on('reconnecting', resolve))
  for (let n = 1; n <= 10; n++) await app.chanx.broadcast('feed', { action: 'tick', payload: { n } })
  await app.chanx.broadcast('side', { action: 'side', payload: { n: 11 } })
  let info = await nextOpen(client)
  t.same(info.recovery, { recovered: false, reason: 'window_exceeded', failed: { feed: 'window_exceeded' }, userFailed: null })
  await until(() => messages.length === 2, 'the side replay')
  t.same(messages.map((m) => m.payload.n), [0, 11], 'the group within its window is still replayed')

  proxy.cut()
  await new Promise((resolve) => client.on('reconnecting', resolve))
  access.set('alice', ['side'])
  await app.chanx.broadcast('feed', { action: 'secret', payload: null })
  await app.chanx.broadcast('side', { action: 'side', payload: { n: 12 } })
  info = await nextOpen(client)
  t.same(info.recovery, { recovered: false, reason: 'not_allowed', failed: { feed: 'not_allowed' }, userFailed: null })
  await until(() => messages.length === 3, 'the side replay')
  t.same(messages.map((m) => m.action), ['tick', 'side', 'side'], 'nothing of the revoked group')

  // The client may only come back once the app has Redis again: reconnecting while Redis is down (or
  // before the app has resubscribed) is told `unavailable`, which is another case than this one.
  const target = proxy.target
  proxy.target = await freePort() // nothing listens: connections through the proxy are refused
  proxy.cut()
  await new Promise((resolve) => client.on('reconnecting', resolve))
  await redis.restart()
  await untilResolved(() => app.chanx.hub.history!.barrier(['g:side']), 'the app back on the restarted Redis')
  proxy.target = target
  info = await nextOpen(client)
  t.match(info.recovery, { recovered: false, reason: 'epoch_changed', failed: { side: 'epoch_changed' } })
  await app.chanx.sendToUser('alice', { action: 'direct', payload: null })
  await until(() => messages.length === 4, 'live after the restart')
  t.match(messages[3], { action: 'direct', chanx_upos: [1, String] })
})

/** Retries `attempt` (each try bounded to 1 s) until it resolves, for at most 10 s. */
async function untilResolved (attempt: () => Promise<unknown>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const ok = await Promise.race([
      attempt().then(() => true, () => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000))
    ])
    if (ok) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
