import { test } from 'tap'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { Redis } from 'ioredis'
import chanx, { type FastifyChanxOptions } from '../plugin'
import { closeApp } from '../plugin/testing'
import { FakeMember } from './helpers/members'
import { RedisServer, redisSkipReason } from './helpers/redis'

// A presence entry is what another process says about a group; Redis is a trust boundary (docs/security.md).

const skip = redisSkipReason()
const SECRET = 'a presence secret of at least thirty-two bytes'

async function presenceApp (t: { teardown (fn: () => unknown): void }, options: FastifyChanxOptions, lines?: string[]): Promise<FastifyInstance> {
  const stream = new Writable({ write (chunk, _encoding, done) { lines?.push(String(chunk)); done() } })
  const app = Fastify({ logger: { level: 'warn', stream } })
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

test('with channelSecret, a forged, moved or badly typed presence entry is refused and counted; a signed one counts', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const lines: string[] = []
  const reader = await presenceApp(t, { redis: redis.url, presence: true, channelSecret: SECRET }, lines)
  const writer = await presenceApp(t, { redis: redis.url, presence: true, channelSecret: SECRET })
  await writer.chanx.hub.join(new FakeMember('bob'), 'room')
  await writer.chanx.hub.join(new FakeMember('bob'), 'other')
  await eventually(async () => (await reader.chanx.presence('room')).connections === 1)

  const admin = new Redis(redis.port, '127.0.0.1')
  t.teardown(() => admin.quit())
  const [seconds] = await admin.time()
  const later = (Number(seconds) + 60) * 1000
  const signed = (await admin.hget('chanx:{g:other}:presence', writer.chanx.hub.origin))!
  t.match(signed, /^\d+\|[0-9a-f]{64}\{"c":1,"u":\["bob"\]\}$/, 'the writer stores its entry signed')
  await admin.hset('chanx:{g:room}:presence',
    'forged', `${later}|{"c":7,"u":["mallory"]}`,
    'badsig', `${later}|${'0'.repeat(64)}{"c":7,"u":["mallory"]}`,
    // The writer's genuine entry of another group, moved here under another field: its signature does not fit.
    'moved', signed,
    'types', `${later}|{"c":"5","u":[1]}`)
  t.same(await reader.chanx.presence('room'), { connections: 1, users: ['bob'] }, 'only the genuine entry counts')
  await closeApp(reader) // flushes the failure summary
  t.ok(lines.some((line) => line.includes('4 presence entry checks failed')), 'the refused entries are counted in the failure summary')
})

test('without a secret, an entry with wrong types is refused, never added as a string', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const app = await presenceApp(t, { redis: redis.url, presence: true })
  const admin = new Redis(redis.port, '127.0.0.1')
  t.teardown(() => admin.quit())
  const [seconds] = await admin.time()
  const later = (Number(seconds) + 60) * 1000
  await admin.hset('chanx:{g:room}:presence',
    'strings', `${later}|{"c":"5","u":[1,{"x":1}]}`,
    'more-users-than-connections', `${later}|{"c":1,"u":["a","b"]}`,
    'negative', `${later}|{"c":-3,"u":[]}`,
    'fine', `${later}|{"c":2,"u":["zed"]}`)
  await app.chanx.hub.join(new FakeMember('amy'), 'room')
  const info = await app.chanx.presence('room')
  t.same(info, { connections: 3, users: ['amy', 'zed'] })
  t.equal(typeof info.connections, 'number')
})
