import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { defineSocketRoute } from '../plugin'
import { closeApp, connect } from '../plugin/testing'
import { ChannelHub } from '../plugin/channels/hub'
import { createRedisLayer } from '../plugin/channels/redis/layer'
import type { ChannelLogger } from '../plugin/channels/layer'
import { RedisServer, redisSkipReason } from './helpers/redis'
import { FakeMember } from './helpers/members'

const skip = redisSkipReason()
const SECRET = 'a-channel-secret-of-at-least-32-bytes!'

function recordingLogger (): ChannelLogger & { reasons: string[] } {
  const reasons: string[] = []
  return { reasons, warn (obj: any) { if (obj.reason !== undefined) reasons.push(obj.reason) }, error () {} }
}

/** A raw Redis client: what anyone with access to the server can do. */
async function forger (t: { teardown (fn: () => unknown): void }, url: string) {
  const { Redis } = await import('ioredis')
  const client = new Redis(url)
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  return client
}

/** Until `check` holds or `ms` passed. */
async function until (check: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
}

test('with a channel secret, forged broadcasts, user messages, events and disconnects published on Redis are not delivered', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const logger = recordingLogger()
  const one = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }), secret: SECRET })
  const two = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }), secret: SECRET, logger })
  t.teardown(async () => { await one.close(); await two.close() })
  const alice = new FakeMember('alice')
  await two.join(alice, 'room')
  const raw = await forger(t, redis.url)

  const forged: Array<[string, object]> = [
    ['chanx:{g:room}', { v: 1, o: 'forger', k: 'b', g: ['room'], s: 'alice', m: '{"action":"chat","payload":"forged"}' }],
    ['chanx:{u:alice}', { v: 1, o: 'forger', k: 'u', m: '{"action":"notice","payload":"forged"}' }],
    ['chanx:{u:alice}', { v: 1, o: 'forger', k: 'c', c: 4003, r: 'forged' }],
    ['chanx:{g:room}', { v: 1, o: 'forger', k: 'e', g: ['room'], n: 'ev', p: 'forged' }]
  ]
  for (const [channel, envelope] of forged) t.equal(await raw.publish(channel, JSON.stringify(envelope)), 1, 'the hub with a member received it')
  // A signature made up by the forger.
  const signedByGuess = JSON.stringify(forged[0][1]).slice(0, -1) + ',"h":"' + '0'.repeat(64) + '"}'
  await raw.publish('chanx:{g:room}', signedByGuess)
  await until(() => logger.reasons.length >= 5)
  t.same(logger.reasons, ['unsigned', 'unsigned', 'unsigned', 'unsigned', 'bad signature'])

  await one.broadcast('room', { action: 'chat', payload: 'genuine' })
  await until(() => alice.received.length > 0)
  t.same(alice.messages, [{ action: 'chat', payload: 'genuine', is_mine: false, is_current: false }], 'only the genuine one')
  t.same(alice.events, [])
  t.equal(alice.closed, null)
})

test('without a secret, an invalid JSON message published on Redis is never delivered', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const logger = recordingLogger()
  const hub = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }), logger })
  t.teardown(() => hub.close())
  const m = new FakeMember('bob')
  await hub.join(m, 'room')
  const raw = await forger(t, redis.url)
  await raw.publish('chanx:{g:room}', JSON.stringify({ v: 1, o: 'forger', k: 'b', g: ['room'], s: null, m: '{"action":"chat",oops}' }))
  await raw.publish('chanx:{u:bob}', JSON.stringify({ v: 1, o: 'forger', k: 'u', m: '{"a":}' }))
  await raw.publish('chanx:{g:room}', JSON.stringify({ v: 1, o: 'forger', k: 'b', g: ['room'], s: null, m: '{"action":"ok"}' }))
  await until(() => m.received.length > 0)
  t.same(m.received, ['{"action":"ok","is_mine":false,"is_current":false}'], 'only the valid one (no secret: a well-formed forgery passes)')
  t.same(logger.reasons, ['broadcast message is not a JSON object', 'user message is not a JSON object'])
})

test('a broadcast made while Redis hangs settles within publishTimeout', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  t.teardown(() => redis.resume())
  const hub = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }, { publishTimeout: 300 }) })
  t.teardown(() => hub.close())
  const m = new FakeMember('u')
  await hub.join(m, 'g')
  redis.pause()
  const started = Date.now()
  await t.rejects(hub.broadcast('g', { n: 1 }), { code: 'FST_CHANX_CHANNEL_LAYER_TIMEOUT', message: /publishing to "g:g" did not complete within 300 ms/ })
  const took = Date.now() - started
  t.ok(took >= 290 && took < 2000, `settled after ${took} ms`)
  t.same(m.messages, [{ n: 1, is_mine: false, is_current: false }], 'local members got it at once')
  redis.resume()
})

test('publishTimeout must be a positive number of milliseconds', { skip }, async (t) => {
  await t.rejects(createRedisLayer({ url: 'redis://127.0.0.1:1' }, { publishTimeout: 0 }), { code: 'FST_CHANX_INVALID_OPTION', message: /redis.publishTimeout must be a positive number/ })
})

test('a socket whose handler awaits a broadcast while Redis hangs answers within publishTimeout and keeps answering', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { redis: { url: redis.url, publishTimeout: 300 }, channelSecret: SECRET })
  app.route(defineSocketRoute({
    url: '/ws',
    groups: () => ['lobby'],
    messages: { chat: Type.Object({ text: Type.String() }) },
    handlers: {
      chat: async (message, ctx) => {
        await ctx.broadcast({ action: 'chat', payload: message.payload })
        return { action: 'sent', payload: null }
      }
    }
  }))
  await app.ready()
  t.teardown(async () => { redis.resume(); await closeApp(app) })
  const client = await connect(app, '/ws', { timeout: 3000 })
  await client.authentication()
  client.sendAction('chat', { text: 'before' })
  t.same(await client.receive(), { action: 'sent', payload: null })

  redis.pause()
  const started = Date.now()
  client.sendAction('chat', { text: 'during' })
  client.sendAction('ping')
  t.same(await client.receive(), { action: 'sent', payload: null }, 'the broadcast settled (logged) and the handler answered')
  t.same(await client.receive(), { action: 'pong', payload: null }, 'the next frame is handled')
  t.ok(Date.now() - started < 2000, `within the bound (${Date.now() - started} ms)`)
  redis.resume()
})
