import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import chanx, { MemoryLayer, type FastifyChanxOptions } from '../plugin'
import { closeApp, connect } from '../plugin/testing'
import { RedisServer, freePort, redisSkipReason } from './helpers/redis'
import { pluginRegistrationError } from './helpers/registration'

/** The plugin's `redis` and `channelLayer` options: every shape it accepts, and every one it refuses. */

const skip = redisSkipReason()

/** An app whose one socket route joins group `room`; closed on teardown. */
async function groupApp (t: { teardown (fn: () => unknown): void }, options: FastifyChanxOptions): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  await app.register(chanx, options)
  app.get('/ws', { websocket: true, groups: () => ['room'] }, () => {})
  await app.ready()
  return app
}

test('channelLayer and redis together fail registration', async (t) => {
  const err = await pluginRegistrationError({ channelLayer: new MemoryLayer(), redis: 'redis://127.0.0.1:6379' })
  t.equal(err.code, 'FST_CHANX_INVALID_OPTION')
  t.equal(err.message, 'fastify-chanx: options channelLayer and redis exclude each other: pass one')
})

test('a channelLayer that does not implement ChannelLayer fails registration', async (t) => {
  for (const channelLayer of ['memory', {}, { publish () {} }]) {
    const err = await pluginRegistrationError({ channelLayer })
    t.equal(err.code, 'FST_CHANX_INVALID_OPTION', JSON.stringify(channelLayer))
    t.equal(err.message, 'fastify-chanx: option channelLayer must implement ChannelLayer (subscribe, unsubscribe, publish, setListener, close)')
  }
})

test('channelLayer: null fails registration with the ChannelLayer message', async (t) => {
  const err = await pluginRegistrationError({ channelLayer: null })
  t.equal(err.code, 'FST_CHANX_INVALID_OPTION')
  t.equal(err.message, 'fastify-chanx: option channelLayer must implement ChannelLayer (subscribe, unsubscribe, publish, setListener, close)')
})

test('redis as an empty string fails registration and says what to give', async (t) => {
  const err = await pluginRegistrationError({ redis: '' })
  t.equal(err.code, 'FST_CHANX_INVALID_OPTION')
  t.equal(err.message, 'fastify-chanx: option redis is an empty string: give a URL such as redis://127.0.0.1:6379, or leave it unset')
})

test('redis of any other shape fails registration and lists the accepted ones', async (t) => {
  for (const redis of [6379, {}, { url: 6379 }, null, true]) {
    const err = await pluginRegistrationError({ redis })
    t.equal(err.code, 'FST_CHANX_INVALID_OPTION', JSON.stringify(redis))
    t.equal(err.message, 'fastify-chanx: option redis must be a URL, an ioredis client or Cluster, { url, prefix, connectTimeout, subscribeTimeout, publishTimeout }, or { cluster: [{ host, port }, …], clusterOptions, prefix, connectTimeout, subscribeTimeout, publishTimeout }')
  }
})

test('redis forms with a bad cluster, prefix or key fail registration and name what is wrong', async (t) => {
  const cases: Array<[unknown, string]> = [
    [{ cluster: [] }, 'fastify-chanx: redis.cluster must be a non-empty array of { host, port } or "redis://host:port" nodes'],
    [{ cluster: [{ host: '127.0.0.1' }] }, 'fastify-chanx: redis.cluster must be a non-empty array of { host, port } or "redis://host:port" nodes'],
    [{ cluster: [{ host: '127.0.0.1', port: 70000 }] }, 'fastify-chanx: redis.cluster must be a non-empty array of { host, port } or "redis://host:port" nodes'],
    [{ cluster: ['redis://127.0.0.1:7000'], clusterOptions: 'fast' }, 'fastify-chanx: redis.clusterOptions must be an object'],
    [{ cluster: ['redis://127.0.0.1:7000'], prefx: 'a:' }, 'fastify-chanx: option redis { cluster } has an unknown key "prefx"; allowed: cluster, clusterOptions, prefix, connectTimeout, subscribeTimeout, publishTimeout, logger'],
    [{ url: 'redis://127.0.0.1:6379', timeout: 5 }, 'fastify-chanx: option redis { url } has an unknown key "timeout"; allowed: url, prefix, connectTimeout, subscribeTimeout, publishTimeout, logger'],
    [{ url: 'redis://127.0.0.1:6379', prefix: 'app{1}:' }, 'fastify-chanx: redis.prefix may not contain "{" or "}": the channel after it is the Redis Cluster hash tag'],
    [{ cluster: ['redis://127.0.0.1:7000'], prefix: '}' }, 'fastify-chanx: redis.prefix may not contain "{" or "}": the channel after it is the Redis Cluster hash tag']
  ]
  for (const [redis, message] of cases) {
    const err = await pluginRegistrationError({ redis })
    t.equal(err.code, 'FST_CHANX_INVALID_OPTION', JSON.stringify(redis))
    t.equal(err.message, message)
  }
})

test('a channelLayer of your own carries the plugin\'s broadcasts', async (t) => {
  const layer = new MemoryLayer()
  const app = await groupApp(t, { channelLayer: layer })
  const client = await connect(app, '/ws')
  await client.authentication()
  await app.chanx.broadcast('room', { action: 'news', payload: 1 })
  t.same(await client.receive(), { action: 'news', payload: 1, is_mine: false, is_current: false })
})

test('redis { url, connectTimeout } that nobody answers fails registration with FST_CHANX_CHANNEL_LAYER_UNREACHABLE', { skip }, async (t) => {
  const port = await freePort()
  const err = await pluginRegistrationError({ redis: { url: `redis://127.0.0.1:${port}`, connectTimeout: 300 } })
  t.equal(err.code, 'FST_CHANX_CHANNEL_LAYER_UNREACHABLE')
})

test('redis { url, prefix } carries broadcasts between apps with the same prefix, and only between them', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const sender = await groupApp(t, { redis: { url: redis.url, prefix: 'one:' } })
  const sameBus = await groupApp(t, { redis: { url: redis.url, prefix: 'one:' } })
  const otherBus = await groupApp(t, { redis: { url: redis.url, prefix: 'two:' } })
  const near = await connect(sameBus, '/ws')
  const far = await connect(otherBus, '/ws')
  await near.authentication()
  await far.authentication()
  await sender.chanx.broadcast('room', { action: 'news', payload: 'prefixed' })
  t.same(await near.receive(), { action: 'news', payload: 'prefixed', is_mine: false, is_current: false })
  await t.rejects(far.receive(200), /no message/, 'another prefix is another bus')
})

test('redis as an ioredis client is used by the plugin', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const { Redis } = await import('ioredis')
  const client = new Redis(redis.url)
  t.teardown(() => client.quit())
  const byClient = await groupApp(t, { redis: client as unknown as FastifyChanxOptions['redis'] })
  const byUrl = await groupApp(t, { redis: redis.url })
  const socket = await connect(byUrl, '/ws')
  await socket.authentication()
  await byClient.chanx.broadcast('room', { action: 'news', payload: 'from the client' })
  t.same(await socket.receive(), { action: 'news', payload: 'from the client', is_mine: false, is_current: false })
})

test('broadcasts through app.chanx that the layer cannot publish are counted in one summary line, and the calls still resolve', async (t) => {
  class DownLayer extends MemoryLayer {
    override async publish (): Promise<number> { throw new Error('layer down') }
  }
  const lines: Array<Record<string, unknown>> = []
  const app = Fastify({ logger: { level: 'warn', stream: { write (line: string) { lines.push(JSON.parse(line) as Record<string, unknown>) } } } })
  await app.register(websocket)
  await app.register(chanx, { channelLayer: new DownLayer() })
  app.get('/ws', { websocket: true, groups: () => ['room'] }, () => {})
  await app.ready()
  const client = await connect(app, '/ws')
  await client.authentication()
  for (let i = 0; i < 3; i++) await app.chanx.broadcast('room', { action: 'news', payload: i })
  t.same(await client.receive(), { action: 'news', payload: 0, is_mine: false, is_current: false }, 'local members are served first')
  t.same(lines.filter((l) => String(l.msg).includes('failed in the last')), [], 'no line per failed broadcast')
  await closeApp(app)
  const summaries = lines.filter((l) => String(l.msg).startsWith('fastify-chanx: ') && String(l.msg).includes('failed in the last'))
  t.equal(summaries.length, 1, 'one summary line, flushed on close')
  t.equal(summaries[0]?.msg, 'fastify-chanx: 3 broadcasts failed in the last 10 s')
  t.same(summaries[0]?.failed, { broadcast: 3 })
  t.equal((summaries[0]?.err as { message?: string } | undefined)?.message, 'layer down')
})
