import { test, type Test } from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { IsAuthenticated, defineSocketRoute, jwtAuthentication } from '../plugin'
import { RECOVERY_SECRET, buildRecoveryApp, listen, nextOpen, openClient, rawSocket, TcpProxy, until } from './helpers/recovery'
import { RedisServer, redisSkipReason } from './helpers/redis'
import { FakeMember } from './helpers/members'
import { ChannelHub } from '../plugin/channels/hub'
import { createHistoryStore } from '../plugin/channels/history/setup'
import { createRedisLayer } from '../plugin/channels/redis/layer'

const skip = redisSkipReason()

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A redis-server of the test's own for the `redis` store (its URL), none for `memory`. */
async function redisFor (t: Test, store: 'memory' | 'redis'): Promise<string | undefined> {
  if (store === 'memory') return undefined
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  return redis.url
}

for (const store of ['memory', 'redis'] as const) {
  test(`${store}: a long idle keeps the stream's position: nothing missed resumes recovered, expired messages are window_exceeded`,
    { skip: store === 'redis' ? skip : false }, async (t) => {
      const url = await redisFor(t, store)
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

test('a history broadcast rejected on a hung Redis (SIGSTOP) is never stored nor delivered once it thaws', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => { redis.resume(); return redis.stop() })
  const hub = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }, { publishTimeout: 500 }) })
  const other = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }) })
  t.teardown(async () => { await hub.close(); await other.close() })
  hub.useHistory(createHistoryStore(hub.layer, { size: 100, maxAge: 60_000 }))
  other.useHistory(createHistoryStore(other.layer, { size: 100, maxAge: 60_000 }))
  const here = new FakeMember('bob')
  const there = new FakeMember('carol')
  await hub.join(here, 'room')
  await other.join(there, 'room')
  await hub.broadcast('room', { n: 1 })
  await until(() => here.received.length === 1 && there.received.length === 1, 'the first copy')
  const start = await other.history!.position('g:room')

  redis.pause()
  // Two groups, one script on one redis-server: kept for both or for neither.
  const rejected = await hub.broadcast(['room', 'side'], { n: 2 }).then(() => null, (err: { code?: string, outcome?: string, groups?: unknown }) => err)
  t.equal(rejected?.code, 'FST_CHANX_CHANNEL_LAYER_TIMEOUT', 'the caller is told it failed')
  t.equal(rejected?.outcome, 'unknown', 'sent, with no answer: the caller cannot know whether it ran')
  t.same(rejected?.groups, { room: 'unknown', side: 'unknown' }, 'the same for each group')
  await sleep(300)
  redis.resume()

  await other.broadcast('room', { n: 3 })
  await until(() => here.received.length >= 2 && there.received.length >= 2, 'the next copy')
  await sleep(200)
  const seen = (member: FakeMember): unknown[] => member.messages.map((m) => m.n)
  t.same(seen(here), [1, 3], 'the rejected broadcast never reached the sending process')
  t.same(seen(there), [1, 3], 'nor another process')
  const read = await other.history!.read('g:room', { offset: start.offset - 1, epoch: start.epoch })
  t.same(read.entries?.map((e) => JSON.parse(e.body).n), [1, 3], 'nor the history: offsets stay contiguous')
})

test('over Redis, a broadcast to [A, B] reaching a socket through A (ctx.join) moves its B position: a resume does not replay it again', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const app = Fastify()
  await app.register(jwt, { secret: RECOVERY_SECRET })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated], redis: redis.url, history: true })
  app.route(defineSocketRoute({
    url: '/ws',
    groups: () => ['b'],
    messages: { enter: Type.Object({}) },
    handlers: { enter: async (_message, ctx) => { await ctx.join('a'); return { action: 'entered', payload: null } } }
  }))
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice')
  await client.connect()
  await client.request('enter' as never, {} as never)
  await app.chanx.broadcast(['a', 'b'], { action: 'both', payload: { n: 1 } })
  await until(() => messages.some((m) => m.action === 'both'), 'the live copy')
  t.match(messages.find((m) => m.action === 'both'), { chanx_pos: { a: [1, String], b: [1, String] } }, 'the copy carries both positions')

  proxy.cut()
  const info = await nextOpen(client)
  await app.chanx.broadcast('b', { action: 'after', payload: null })
  await until(() => messages.some((m) => m.action === 'after'), 'the next live message')
  t.equal(messages.filter((m) => m.action === 'both').length, 1, 'delivered once, not replayed through B')
  t.same(info.recovery, { recovered: true, reason: null, failed: {}, userFailed: null })
})

for (const store of ['memory', 'redis'] as const) {
  test(`${store}: a broadcast to [feed, side] kept between the resume's read of feed and its read of side is delivered once, live`,
    { skip: store === 'redis' ? skip : false }, async (t) => {
      const url = await redisFor(t, store)
      const app = await buildRecoveryApp(url === undefined ? {} : { redis: url })
      const port = await listen(t, app)
      const token = app.jwt.sign({ sub: 'alice' })
      const first = await rawSocket(`ws://127.0.0.1:${port}/ws?token=${token}`)
      first.ws.close()
      await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 1 } })

      // The reads of one resume are not simultaneous: side's read is held until a broadcast to both groups
      // has been kept, so side's read covers it and feed's read (made first) does not. The replay takes a
      // two-group message from the first resumed group, feed; the live copy must then be the one delivered.
      const history = app.chanx.hub.history!
      const read = history.read.bind(history)
      history.read = async (channel, since) => {
        if (channel === 'g:side') await app.chanx.broadcast(['feed', 'side'], { action: 'tick', payload: { n: 2 } })
        return read(channel, since)
      }
      const resume = Buffer.from(JSON.stringify({ t: first.auth.chanx_recovery.token, g: first.auth.chanx_recovery.positions })).toString('base64url')
      const resumed = await rawSocket(`ws://127.0.0.1:${port}/ws?token=${token}&chanx_recover=${resume}`)
      t.match(resumed.auth.chanx_recovery, { recovered: true })
      history.read = read
      await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 3 } })
      await until(() => resumed.messages.some((m) => m.payload?.n === 3), 'the next live message')
      t.same(resumed.messages.filter((m) => m.action === 'tick').map((m) => m.payload.n), [1, 2, 3], 'replayed 1, then 2 once, then live 3')
      resumed.ws.close()
    })
}
