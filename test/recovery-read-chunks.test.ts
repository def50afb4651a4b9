import { test } from 'tap'
import Redis from 'ioredis'
import { buildRecoveryApp, listen, rawSocket, until } from './helpers/recovery'
import { RedisServer, redisSkipReason } from './helpers/redis'

const skip = redisSkipReason()

test('a long resume reads Redis in small chunks: no history command holds Redis for long, and every message is replayed once, in order', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const probe = new Redis(redis.url)
  t.teardown(() => probe.disconnect())
  const app = await buildRecoveryApp({ redis: redis.url, history: { size: 1000, maxAge: 120_000 }, maxBufferedBytes: 16 * 1024 * 1024 })
  const port = await listen(t, app)
  const token = app.jwt.sign({ sub: 'alice' })
  const first = await rawSocket(`ws://127.0.0.1:${port}/ws?token=${token}`)
  first.ws.close()
  // 1,000 kept messages of 4 KB in each of two groups: 8 MB that one script would hand back in two replies.
  const text = 'x'.repeat(4000)
  for (let n = 1; n <= 1000; n++) {
    await Promise.all([app.chanx.broadcast('feed', { action: 'tick', payload: { n, text } }), app.chanx.broadcast('side', { action: 'tock', payload: { n, text } })])
  }
  await probe.config('SET', 'slowlog-log-slower-than', '10000') // µs
  await probe.slowlog('RESET')

  const resume = Buffer.from(JSON.stringify({ t: first.auth.chanx_recovery.token, g: first.auth.chanx_recovery.positions })).toString('base64url')
  const resumed = await rawSocket(`ws://127.0.0.1:${port}/ws?token=${token}&chanx_recover=${resume}`)
  t.match(resumed.auth.chanx_recovery, { recovered: true })
  const deadline = Date.now() + 20_000
  while (resumed.messages.length < 2000 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  resumed.ws.close()
  for (const action of ['tick', 'tock']) {
    const ns = resumed.messages.filter((m) => m.action === action).map((m) => m.payload.n)
    t.same(ns, Array.from({ length: 1000 }, (_, i) => i + 1), `every ${action} replayed once, in order`)
  }
  const slow = await probe.slowlog('GET', 128) as Array<[number, number, number, string[]]>
  const reads = slow.filter((entry) => entry[3].some((arg) => String(arg).includes('history')))
  t.same(reads.map((entry) => `${entry[3][0]} took ${entry[2]} µs`), [], 'no history command took 10 ms or more')
})

test('entries trimmed between two chunks of a resume make the stream window_exceeded, with nothing of it replayed', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const probe = new Redis(redis.url)
  t.teardown(() => probe.disconnect())
  const app = await buildRecoveryApp({ redis: redis.url, history: { size: 1000, maxAge: 120_000 } })
  const port = await listen(t, app)
  const token = app.jwt.sign({ sub: 'alice' })
  const first = await rawSocket(`ws://127.0.0.1:${port}/ws?token=${token}`)
  first.ws.close()
  for (let n = 1; n <= 300; n++) await app.chanx.broadcast('feed', { action: 'tick', payload: { n } })
  const [stream] = await probe.keys('*{g:feed}:history')
  t.ok(stream, 'the stream of feed')

  // Between the first chunk (the newest 100) and the next, the stream is trimmed to its newest 150, as
  // MAXLEN / MINID trimming by other publishers would: the read cannot have every missed entry.
  const client = (app.chanx.hub.history!.store as unknown as { client: { evalsha: (...args: unknown[]) => Promise<unknown> } }).client
  const evalsha = client.evalsha
  let trimmed = false
  client.evalsha = async function (this: unknown, ...args: unknown[]) {
    if (args[1] === 1 && !trimmed) { trimmed = true; await probe.xtrim(stream!, 'MAXLEN', 150) }
    return evalsha.apply(this, args)
  }
  t.teardown(() => { client.evalsha = evalsha })

  const resume = Buffer.from(JSON.stringify({ t: first.auth.chanx_recovery.token, g: first.auth.chanx_recovery.positions })).toString('base64url')
  const resumed = await rawSocket(`ws://127.0.0.1:${port}/ws?token=${token}&chanx_recover=${resume}`)
  t.ok(trimmed, 'the read went on to a second chunk, after the trim')
  t.match(resumed.auth.chanx_recovery, { recovered: false, failed: { feed: 'window_exceeded' } })
  await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 301 } })
  await until(() => resumed.messages.length > 0, 'the next live message')
  t.same(resumed.messages.map((m) => m.payload.n), [301], 'nothing of the cut stream was replayed; live messages go on')
  resumed.ws.close()
})
