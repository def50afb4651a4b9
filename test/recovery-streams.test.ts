import { test } from 'tap'
import { buildRecoveryApp, listen, nextOpen, openClient, TcpProxy, until } from './helpers/recovery'
import { RedisServer, redisSkipReason } from './helpers/redis'

const skip = redisSkipReason()

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

for (const store of ['memory', 'redis'] as const) {
  test(`${store}: a long idle keeps the stream's position: nothing missed resumes recovered, expired messages are window_exceeded`,
    { skip: store === 'redis' ? skip : false }, async (t) => {
      let url: string | undefined
      if (store === 'redis') {
        const redis = await RedisServer.start()
        t.teardown(() => redis.stop())
        url = redis.url
      }
      const app = await buildRecoveryApp({ ...(url === undefined ? {} : { redis: url }), history: { size: 100, maxAge: 1000 } })
      const proxy = await new TcpProxy(await listen(t, app)).start()
      t.teardown(() => proxy.close())
      const { client, messages } = openClient(t, app, proxy, 'alice', [50, 3000])
      await client.connect()
      await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 0 } })
      await app.chanx.sendToUser('alice', { action: 'direct', payload: null })
      await until(() => messages.length === 2, 'the first messages')

      // Connected and idle for longer than maxAge: the messages expired, the positions must not have.
      await sleep(2500)
      proxy.cut()
      let info = await nextOpen(client)
      t.same(info.recovery, { recovered: true, reason: null, failed: {}, userFailed: null }, 'nothing missed: recovered')

      // Away while a message is sent, and longer than maxAge: it expired, which is not a new epoch.
      proxy.cut()
      await new Promise((resolve) => client.on('reconnecting', resolve))
      await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 1 } })
      info = await nextOpen(client)
      t.same(info.recovery, { recovered: false, reason: 'window_exceeded', failed: { feed: 'window_exceeded' }, userFailed: null })
      await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 2 } })
      await until(() => messages.length === 3, 'live again')
      t.match(messages[2], { payload: { n: 2 }, chanx_pos: { feed: [3, String] } }, 'the same epoch goes on')
    })
}
