import { test } from 'tap'
import Redis from 'ioredis'
import { buildRecoveryApp, listen, nextOpen, openClient, TcpProxy, until } from './helpers/recovery'
import { RedisServer, redisSkipReason } from './helpers/redis'
import { mergeResume, type ResumeState } from '../plugin/client/resume-state'

const skip = redisSkipReason()

test('a group whose history read failed once is still resumed after the next outage', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const admin = new Redis(redis.url, { lazyConnect: true })
  await admin.connect()
  t.teardown(() => admin.disconnect())
  const app = await buildRecoveryApp({ redis: redis.url, history: { size: 100, maxAge: 60_000 } }, new Map([['alice', ['feed']]]))
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice')
  const tick = (n: number): Promise<unknown> => app.chanx.broadcast('feed', { action: 'tick', payload: { n } })

  await client.connect()
  await tick(1)
  await until(() => messages.length === 1, 'the first tick')

  // Outage 1: the stream is replaced by a key of another type, so the resume's read fails (WRONGTYPE).
  proxy.cut()
  await new Promise((resolve) => client.on('reconnecting', resolve))
  await tick(2)
  const stream = 'chanx:{g:feed}:history'
  await admin.rename(stream, 'kept')
  await admin.set(stream, 'not a stream')
  let info = await nextOpen(client)
  t.same(info.recovery, { recovered: false, reason: 'unavailable', failed: { feed: 'unavailable' }, userFailed: null })
  await admin.del(stream)
  await admin.rename('kept', stream)

  await tick(3)
  await until(() => messages.length === 2, 'the live tick after the failed read')

  // Outage 2: everything published meanwhile comes back, because the client still asks for the group.
  proxy.cut()
  await new Promise((resolve) => client.on('reconnecting', resolve))
  await tick(4)
  await tick(5)
  info = await nextOpen(client)
  t.same(info.recovery, { recovered: true, reason: null, failed: {}, userFailed: null })
  await until(() => messages.length === 4, 'the replay of 4 and 5')
  t.same(messages.map((m) => m.payload.n), [1, 3, 4, 5], 'the gap of outage 1 was reported, outage 2 replayed, nothing twice')
})

test('a failed read with no live message since: the next resume replays everything from the old position', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const admin = new Redis(redis.url, { lazyConnect: true })
  await admin.connect()
  t.teardown(() => admin.disconnect())
  const app = await buildRecoveryApp({ redis: redis.url, history: { size: 100, maxAge: 60_000 } }, new Map([['alice', ['feed', 'side']]]))
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice')
  const tick = (n: number): Promise<unknown> => app.chanx.broadcast('feed', { action: 'tick', payload: { n } })

  await client.connect()
  await tick(1)
  await until(() => messages.length === 1, 'the first tick')
  proxy.cut()
  await new Promise((resolve) => client.on('reconnecting', resolve))
  await tick(2)
  const stream = 'chanx:{g:feed}:history'
  await admin.rename(stream, 'kept')
  await admin.set(stream, 'not a stream')
  let info = await nextOpen(client)
  t.same(info.recovery, { recovered: false, reason: 'unavailable', failed: { feed: 'unavailable' }, userFailed: null })
  await admin.del(stream)
  await admin.rename('kept', stream)

  proxy.cut()
  await new Promise((resolve) => client.on('reconnecting', resolve))
  await tick(3)
  info = await nextOpen(client)
  t.same(info.recovery, { recovered: true, reason: null, failed: {}, userFailed: null })
  await until(() => messages.length === 3, 'the replay of 2 and 3')
  t.same(messages.map((m) => m.payload.n), [1, 2, 3], 'the message the failed read missed comes back once')
})

test('the merge rule, reason by reason', async (t) => {
  const old: ResumeState = { t: 'old', g: { a: [5, 'e'], b: [5, 'e'], c: [5, 'e'], d: [5, 'e'], e: [5, 'e'] }, u: [2, 'e'] }
  const merged = mergeResume(old, {
    token: 'new',
    positions: { a: [9, 'e'], b: [9, 'e'], c: [3, 'f'], f: [1, 'e'] }, // d is omitted, e is gone
    user_position: [7, 'e'],
    recovered: false,
    reason: 'unavailable',
    failed: { a: 'unavailable', b: 'window_exceeded', c: 'epoch_changed', e: 'not_allowed' },
    user_failed: 'unavailable'
  })
  t.same({ ...merged.g }, { a: [5, 'e'], b: [9, 'e'], c: [3, 'f'], d: [5, 'e'], f: [1, 'e'] })
  t.same(merged.u, [2, 'e'], 'an unavailable user stream keeps its old position')
  t.equal(merged.t, 'new')
  const gone = mergeResume(old, { token: 'new', positions: {}, recovered: false, reason: 'not_allowed', user_failed: 'not_allowed' })
  t.equal(gone.u, undefined, 'a user stream no longer allowed is dropped')
  const fresh = mergeResume(old, { token: 'new', positions: { a: [1, 'x'] }, recovered: false, reason: 'invalid_token' })
  t.same({ ...fresh.g }, { a: [1, 'x'] }, 'invalid_token starts over from the server\'s state')
})
