import { test } from 'tap'
import { Redis } from 'ioredis'
import { ChannelHub } from '../plugin/channels/hub'
import { Presence } from '../plugin/channels/presence'
import { createRedisLayer } from '../plugin/channels/redis/layer'
import { FakeMember } from './helpers/members'
import { RedisServer, redisSkipReason } from './helpers/redis'

const skip = redisSkipReason()

test('a presence flush scheduled just before close never writes the entry back', { skip, timeout: 30_000 }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const admin = new Redis(redis.port, '127.0.0.1')
  t.teardown(() => admin.quit())
  const ttl = 3000

  for (let round = 0; round < 5; round++) {
    const hub = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }) })
    const presence = new Presence(hub, { ttl })
    await hub.join(new FakeMember('amy'), 'room')
    await new Promise((resolve) => setTimeout(resolve, 50))
    t.equal(await admin.hexists('chanx:{g:room}:presence', hub.origin), 1, `round ${round}: the entry is written`)
    // A change right before close: its flush is scheduled for the next turn of the event loop.
    await hub.join(new FakeMember('amy'), 'room') // amy's second socket: no new subscription
    await presence.close()
    t.equal(await admin.hexists('chanx:{g:room}:presence', hub.origin), 0, `round ${round}: close deleted the entry`)
    // Past the flush and a whole heartbeat interval (ttl / 3): nothing writes after close.
    await new Promise((resolve) => setTimeout(resolve, ttl / 3 + 200))
    t.equal(await admin.hexists('chanx:{g:room}:presence', hub.origin), 0, `round ${round}: and it stays gone`)
    await hub.close()
  }
})

test('close waits for a presence write in flight, then deletes; a hung Redis bounds the wait', { skip, timeout: 30_000 }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const admin = new Redis(redis.port, '127.0.0.1')
  t.teardown(() => admin.quit())
  const hub = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }) })
  t.teardown(() => hub.close())
  const presence = new Presence(hub, { ttl: 3000 })
  await hub.join(new FakeMember('amy'), 'room')
  await new Promise((resolve) => setTimeout(resolve, 50))

  redis.pause()
  await hub.join(new FakeMember('amy'), 'room') // amy's second socket: no new subscription
  await new Promise((resolve) => setTimeout(resolve, 50)) // the flush has sent its write; Redis holds it
  const closing = presence.close()
  setTimeout(() => redis.resume(), 500)
  const started = Date.now()
  await closing
  t.ok(Date.now() - started < 4500, `close settled in ${Date.now() - started} ms`)
  t.equal(await admin.hexists('chanx:{g:room}:presence', hub.origin), 0, 'the write in flight ran first, then the delete')
  await new Promise((resolve) => setTimeout(resolve, 1200))
  t.equal(await admin.hexists('chanx:{g:room}:presence', hub.origin), 0, 'and nothing wrote it back')
})
