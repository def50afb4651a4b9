import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import chanx, { type FastifyChanxOptions } from '../plugin'
import { closeApp } from '../plugin/testing'
import { MemoryLayer } from '../plugin/channels/memory-layer'
import { FakeMember } from './helpers/members'
import { pluginRegistrationError } from './helpers/registration'
import { RedisServer, redisSkipReason } from './helpers/redis'

const skip = redisSkipReason()

async function presenceApp (t: { teardown (fn: () => unknown): void }, options: FastifyChanxOptions): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  await app.register(chanx, options)
  await app.ready()
  return app
}

async function eventually (check: () => Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not true within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('in process, presence lists the connections and distinct users of a group', async (t) => {
  const app = await presenceApp(t, { presence: true })
  const hub = app.chanx.hub
  const alice1 = new FakeMember('alice')
  const alice2 = new FakeMember('alice')
  await hub.join(alice1, 'room')
  await hub.join(alice2, 'room')
  await hub.join(new FakeMember('bob'), 'room')
  await hub.join(new FakeMember(null), 'room')
  await hub.join(new FakeMember('carol'), 'elsewhere')
  t.same(await app.chanx.presence('room'), { connections: 4, users: ['alice', 'bob'] })
  await hub.leaveAll(alice1)
  t.same(await app.chanx.presence('room'), { connections: 3, users: ['alice', 'bob'] })
  await hub.leave(alice2, 'room')
  t.same(await app.chanx.presence('room'), { connections: 2, users: ['bob'] })
  t.same(await app.chanx.presence('empty'), { connections: 0, users: [] })
  await t.rejects(app.chanx.presence(''), { code: 'FST_CHANX_INVALID_CHANNEL_ARGUMENT' })
})

test('presence is off unless asked for: app.chanx.presence rejects and says how to turn it on', async (t) => {
  const app = await presenceApp(t, {})
  await t.rejects(app.chanx.presence('room'), { code: 'FST_CHANX_PRESENCE_DISABLED' })
  const off = await presenceApp(t, { presence: false })
  await t.rejects(off.chanx.presence('room'), { code: 'FST_CHANX_PRESENCE_DISABLED' })
})

test('a malformed presence option fails registration, naming it', async (t) => {
  const cases: Array<[unknown, string]> = [
    ['yes', 'fastify-chanx: option presence must be true, false or { ttl }'],
    [[], 'fastify-chanx: option presence must be true, false or { ttl }'],
    [{ ttl: 999 }, 'fastify-chanx: option presence.ttl must be an integer number of milliseconds, at least 1000'],
    [{ ttl: 1500.5 }, 'fastify-chanx: option presence.ttl must be an integer number of milliseconds, at least 1000'],
    [{ ttl: '30s' }, 'fastify-chanx: option presence.ttl must be an integer number of milliseconds, at least 1000'],
    [{ tll: 5000 }, 'fastify-chanx: option presence has an unknown key "tll"; allowed: ttl']
  ]
  for (const [presence, message] of cases) {
    const err = await pluginRegistrationError({ presence })
    t.equal(err.code, 'FST_CHANX_INVALID_OPTION', JSON.stringify(presence))
    t.equal(err.message, message)
  }
})

test('presence with a channel layer of its own fails registration; the in-process layer passed as one is fine', async (t) => {
  const own = new MemoryLayer()
  const custom = { name: 'custom', subscribe: own.subscribe.bind(own), unsubscribe: own.unsubscribe.bind(own), publish: own.publish.bind(own), setListener: own.setListener.bind(own), close: own.close.bind(own) }
  const err = await pluginRegistrationError({ presence: true, channelLayer: custom })
  t.equal(err.code, 'FST_CHANX_INVALID_OPTION')
  t.match(err.message, /option presence needs the in-process channel layer or redis/)
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  await app.register(chanx, { presence: true, channelLayer: new MemoryLayer() })
  await app.ready()
  t.same(await app.chanx.presence('nobody'), { connections: 0, users: [] })
})

test('on Redis, presence adds up every process; a closed app removes its entry at once', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const one = await presenceApp(t, { redis: redis.url, presence: { ttl: 3000 } })
  const two = await presenceApp(t, { redis: redis.url, presence: true })
  await one.chanx.hub.join(new FakeMember('alice'), 'room')
  await one.chanx.hub.join(new FakeMember(null), 'room')
  const bob = new FakeMember('bob')
  await two.chanx.hub.join(bob, 'room')
  await two.chanx.hub.join(new FakeMember('alice'), 'room')
  const expected = { connections: 4, users: ['alice', 'bob'] }
  await eventually(async () => JSON.stringify(await one.chanx.presence('room')) === JSON.stringify(expected))
  await eventually(async () => JSON.stringify(await two.chanx.presence('room')) === JSON.stringify(expected))

  await two.chanx.hub.leave(bob, 'room')
  await eventually(async () => (await one.chanx.presence('room')).connections === 3)
  t.same(await one.chanx.presence('room'), { connections: 3, users: ['alice'] })

  const { Redis } = await import('ioredis')
  const admin = new Redis(redis.url)
  t.teardown(() => admin.quit())
  t.equal(await admin.hlen('chanx:{g:room}:presence'), 2, 'one field per process, in the group\'s hash slot')
  const ttl = await admin.pttl('chanx:{g:room}:presence')
  t.ok(ttl > 0 && ttl <= 30_000, `the key expires (${ttl} ms)`)

  await closeApp(two)
  t.same(await one.chanx.presence('room'), { connections: 2, users: ['alice'] }, 'a clean shutdown deletes its entry')
  t.equal(await admin.hlen('chanx:{g:room}:presence'), 1)
})

test('on Redis, an entry past its expiry is ignored and deleted; a malformed one is ignored', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const app = await presenceApp(t, { redis: redis.url, presence: true })
  const { Redis } = await import('ioredis')
  const admin = new Redis(redis.url)
  t.teardown(() => admin.quit())
  const [seconds] = await admin.time()
  await admin.hset('chanx:{g:room}:presence',
    'ghost', `${(Number(seconds) - 1) * 1000}|{"c":5,"u":["ghost"]}`,
    'alive', `${(Number(seconds) + 60) * 1000}|{"c":2,"u":["zed"]}`,
    'garbage', `${(Number(seconds) + 60) * 1000}|not json`,
    'noexpiry', 'x')
  await app.chanx.hub.join(new FakeMember('amy'), 'room')
  t.same(await app.chanx.presence('room'), { connections: 3, users: ['amy', 'zed'] })
  const keys = await admin.hkeys('chanx:{g:room}:presence')
  t.notOk(keys.includes('ghost') || keys.includes('noexpiry'), 'expired and expiry-less fields were deleted')
  t.ok(keys.includes('alive') && keys.includes('garbage'), 'live fields stay')
})

test('on Redis, a presence read while Redis is down rejects; writes resume after recovery', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const app = await presenceApp(t, { redis: { url: redis.url, connectTimeout: 1000 }, presence: { ttl: 1500 } })
  const reader = await presenceApp(t, { redis: redis.url, presence: true })
  await app.chanx.hub.join(new FakeMember('amy'), 'room')
  await eventually(async () => (await reader.chanx.presence('room')).connections === 1)
  await redis.restart()
  // Everything was lost with the restart; the heartbeat (every ttl/3) writes the entry again.
  await eventually(async () => (await reader.chanx.presence('room').catch(() => ({ connections: -1 }))).connections === 1, 8000)
  t.pass('the entry is back after a restart')
  await redis.stop()
  await t.rejects(reader.chanx.presence('room'))
})
