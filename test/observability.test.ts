import { test } from 'tap'
import diagnostics from 'node:diagnostics_channel'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import WebSocket from 'ws'
import chanx, { IsAuthenticated, defineSocketRoute } from '../plugin'
import { closeApp } from '../plugin/testing'
import { headerUser } from './helpers/handshake'
import { RawClient, openReal } from './helpers/router-client'
import { buildRecoveryApp, listen } from './helpers/recovery'
import { RedisServer, redisSkipReason } from './helpers/redis'

// docs/observability.md: every channel it lists is subscribed to here, and its payload checked.

type Event = Record<string, unknown>

/** Subscribes to `names` for the test's life; what each publishes lands in the returned map. */
function record (t: { teardown (fn: () => void): void }, names: readonly string[]): Map<string, Event[]> {
  const seen = new Map<string, Event[]>()
  for (const name of names) {
    seen.set(name, [])
    const listener = (message: unknown): void => { seen.get(name)!.push({ ...(message as Event) }) }
    diagnostics.subscribe(name, listener)
    t.teardown(() => diagnostics.unsubscribe(name, listener))
  }
  return seen
}

async function until (check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function routerApp (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { authentication: [headerUser], permissions: [IsAuthenticated] })
  app.route(defineSocketRoute({
    url: '/ws/:room',
    groups: (ctx) => ['room:' + ctx.params.room],
    messages: {
      echo: Type.Object({ text: Type.String() }),
      boom: Type.Null(),
      slow: Type.Null(),
      shout: Type.Object({ text: Type.String() })
    },
    handlers: {
      echo: (message) => ({ action: 'echo', payload: message.payload }),
      boom: () => { throw new Error('boom') },
      slow: async () => { await new Promise((resolve) => setTimeout(resolve, 5)); return { action: 'slow', payload: null } },
      shout: async (message, ctx) => { await ctx.broadcast({ action: 'shout', payload: message.payload }, { excludeSelf: false }) }
    }
  }))
  app.route(defineSocketRoute({
    url: '/limited',
    rateLimit: { messagesPerSecond: 1, burst: 1 },
    messages: { echo: Type.Object({ text: Type.String() }) },
    handlers: { echo: (message) => ({ action: 'echo', payload: message.payload }) }
  }))
  return app
}

function user (url: string, name: string): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers: { 'x-user': name } })
    const client = new RawClient(socket)
    socket.once('open', () => resolve(client))
    socket.once('error', reject)
  })
}

test('handshakes, frames, broadcasts and socket open/close are published, and the TracingChannels wrap the pipeline and each handler', async (t) => {
  const seen = record(t, [
    'fastify-chanx.handshake', 'fastify-chanx.frame', 'fastify-chanx.broadcast',
    'fastify-chanx.connection.open', 'fastify-chanx.connection.close',
    'tracing:fastify-chanx.handshake:start', 'tracing:fastify-chanx.handshake:asyncEnd',
    'tracing:fastify-chanx.handler:start', 'tracing:fastify-chanx.handler:end', 'tracing:fastify-chanx.handler:error',
    'tracing:fastify-chanx.handler:asyncEnd'
  ])
  const app = await routerApp()
  const port = await listen(t, app)
  const base = `ws://127.0.0.1:${port}`

  const refused = await openReal(`${base}/ws/lobby`)
  t.equal(await refused.closed(), 4403, 'an anonymous client is refused')
  const alice = await user(`${base}/ws/lobby`, 'alice')
  const bob = await user(`${base}/ws/lobby`, 'bob')
  await alice.next()
  await bob.next()
  await until(() => seen.get('fastify-chanx.connection.open')!.length === 2, 'both sockets open')

  const handshakes = seen.get('fastify-chanx.handshake')!
  t.same(handshakes.map((e) => [e.route, e.websocket, e.statusCode]), [['/ws/:room', true, 403], ['/ws/:room', true, 200], ['/ws/:room', true, 200]])
  t.ok(handshakes.every((e) => typeof e.durationMs === 'number' && (e.durationMs as number) >= 0 && e.request !== undefined), 'each with its duration and request')
  t.same(seen.get('tracing:fastify-chanx.handshake:start')!.map((e) => e.route), ['/ws/:room', '/ws/:room', '/ws/:room'])
  t.same(seen.get('tracing:fastify-chanx.handshake:asyncEnd')!.map((e) => e.statusCode), [403, 200, 200], 'the trace context carries the status once decided')

  alice.send({ action: 'ping', payload: null })
  alice.send('not json')
  alice.send({ action: 'nope', payload: null })
  alice.send({ action: 'echo', payload: {} })
  alice.send({ action: 'echo', payload: { text: 'hi' } })
  alice.send({ action: 'boom', payload: null })
  alice.send({ action: 'slow', payload: null })
  alice.send({ action: 'shout', payload: { text: 'all' } })
  await alice.take(8)
  await bob.next()
  await until(() => seen.get('fastify-chanx.frame')!.length === 8, 'every frame\'s outcome')
  t.same(seen.get('fastify-chanx.frame')!.map((e) => [e.route, e.action, e.outcome]), [
    ['/ws/:room', 'ping', 'handled'],
    ['/ws/:room', null, 'invalid_json'],
    ['/ws/:room', 'nope', 'unknown_action'],
    ['/ws/:room', 'echo', 'validation_error'],
    ['/ws/:room', 'echo', 'handled'],
    ['/ws/:room', 'boom', 'failed'],
    ['/ws/:room', 'slow', 'handled'],
    ['/ws/:room', 'shout', 'handled']
  ])
  t.same(seen.get('tracing:fastify-chanx.handler:start')!.map((e) => e.action), ['echo', 'boom', 'slow', 'shout'])
  t.same(seen.get('tracing:fastify-chanx.handler:end')!.map((e) => e.action), ['echo', 'boom', 'slow', 'shout'])
  t.same(seen.get('tracing:fastify-chanx.handler:error')!.map((e) => [e.action, (e.error as Error).message]), [['boom', 'boom']])
  await until(() => seen.get('tracing:fastify-chanx.handler:asyncEnd')!.length === 2, 'the async handlers settled')
  t.same(seen.get('tracing:fastify-chanx.handler:asyncEnd')!.map((e) => e.action), ['slow', 'shout'])

  const broadcasts = seen.get('fastify-chanx.broadcast')!
  t.equal(broadcasts.length, 1)
  t.same(broadcasts[0]!.groups, ['room:lobby'])
  t.equal(broadcasts[0]!.localDeliveries, 2, 'alice (excludeSelf off) and bob')
  t.equal(broadcasts[0]!.error, null)

  const limited = await user(`${base}/limited`, 'carol')
  await limited.next()
  for (let i = 0; i < 3; i++) limited.send({ action: 'echo', payload: { text: String(i) } })
  await until(() => seen.get('fastify-chanx.frame')!.some((e) => e.outcome === 'rate_limited'), 'a frame over the rate')
  t.match(seen.get('fastify-chanx.frame')!.find((e) => e.outcome === 'rate_limited'), { route: '/limited', action: null })

  bob.socket.close(4321)
  await bob.closed()
  await until(() => seen.get('fastify-chanx.connection.close')!.some((e) => e.code === 4321), 'the close')
  t.match(seen.get('fastify-chanx.connection.close')!.find((e) => e.code === 4321), { route: '/ws/:room', code: 4321 })
  t.match(seen.get('fastify-chanx.connection.open')![0], { route: '/ws/:room', code: 0 })
  alice.socket.close()
  limited.socket.close()
})

test('no channel of docs/observability.md has a subscriber until an app or a test subscribes', async (t) => {
  const names = ['fastify-chanx.handshake', 'fastify-chanx.frame', 'fastify-chanx.broadcast', 'fastify-chanx.recovery',
    'fastify-chanx.layer', 'fastify-chanx.presence', 'fastify-chanx.connection.open', 'fastify-chanx.connection.close']
  for (const name of names) t.equal(diagnostics.channel(name).hasSubscribers, false, `${name} has no subscriber by default`)
  t.equal(diagnostics.tracingChannel('fastify-chanx.handler').hasSubscribers, false)
  t.equal(diagnostics.tracingChannel('fastify-chanx.handshake').hasSubscribers, false)
})

function resumeQuery (token: string, groups: Record<string, [number, string]>): string {
  return 'chanx_recover=' + Buffer.from(JSON.stringify({ t: token, g: groups })).toString('base64url')
}

test('a resume publishes whether it recovered, why not, and how many messages it replayed', async (t) => {
  const seen = record(t, ['fastify-chanx.recovery'])
  const app = await buildRecoveryApp({}, new Map([['alice', ['feed']]]))
  const port = await listen(t, app)
  const token = app.jwt.sign({ sub: 'alice' })
  const url = `ws://127.0.0.1:${port}/ws?token=${token}`
  const first = await openReal(url)
  const auth = JSON.parse(await first.next()) as { chanx_recovery: { token: string, positions: Record<string, [number, string]> } }
  const { token: lineage, positions } = auth.chanx_recovery
  first.socket.close()
  await first.closed()
  t.same(seen.get('fastify-chanx.recovery'), [], 'a handshake without a resume publishes nothing')

  await app.chanx.broadcast('feed', { action: 'tick', payload: 1 })
  await app.chanx.broadcast('feed', { action: 'tick', payload: 2 })
  const resumed = await openReal(`${url}&${resumeQuery(lineage, positions)}`)
  await resumed.take(3)
  t.match(seen.get('fastify-chanx.recovery'), [{ route: '/ws', recovered: true, reason: null, replayed: 2 }])

  const invalid = await openReal(`${url}&chanx_recover=garbage`)
  await invalid.next()
  t.match(seen.get('fastify-chanx.recovery')![1], { recovered: false, reason: 'invalid_token', replayed: 0 })
  resumed.socket.close()
  invalid.socket.close()
})

test('over Redis: the layer says once when it is lost and once when it is back, presence writes are published, and an outage logs summaries, not a line per failure', { skip: redisSkipReason() }, async (t) => {
  const seen = record(t, ['fastify-chanx.layer', 'fastify-chanx.presence'])
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const lines: Array<Record<string, unknown>> = []
  const app = Fastify({ logger: { level: 'warn', stream: { write (line: string) { lines.push(JSON.parse(line) as Record<string, unknown>) } } } })
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  await app.register(chanx, { redis: { url: redis.url, publishTimeout: 200 }, presence: { ttl: 3000 } })
  app.get('/ws', { websocket: true, groups: () => ['a', 'b', 'c'] }, () => {})
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = await openReal(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`)
  await client.next()
  await until(() => seen.get('fastify-chanx.presence')!.filter((e) => e.ok === true).length >= 3, 'the presence writes of the three groups')
  t.match(seen.get('fastify-chanx.presence')!.find((e) => e.group === 'a'), { ok: true, error: null })

  await redis.stop()
  await until(() => seen.get('fastify-chanx.layer')!.length === 1, 'the layer lost')
  t.match(seen.get('fastify-chanx.layer')![0], { layer: 'redis', state: 'lost' })
  // An outage of 2.5 s: 20 broadcasts fail, and every heartbeat's write of each group.
  for (let i = 0; i < 20; i++) {
    await app.chanx.broadcast('a', { action: 'tick', payload: i })
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await until(() => seen.get('fastify-chanx.presence')!.some((e) => e.ok === false), 'a failed presence write')
  await redis.restart()
  await until(() => seen.get('fastify-chanx.layer')!.length === 2, 'the layer back', 10_000)
  t.match(seen.get('fastify-chanx.layer')![1], { layer: 'redis', state: 'back', error: null })
  t.equal(seen.get('fastify-chanx.layer')!.length, 2, 'one event each way')

  await closeApp(app)
  const chanxLines = lines.filter((l) => String(l.msg).startsWith('fastify-chanx:'))
  const summaries = chanxLines.filter((l) => String(l.msg).includes('failed in the last'))
  t.same(chanxLines.filter((l) => !String(l.msg).includes('failed in the last')).map((l) => l.msg), [
    'fastify-chanx: Redis channel layer connection lost; reconnecting',
    'fastify-chanx: Redis channel layer reconnected; resubscribing'
  ], 'one line lost, one line back')
  t.ok(summaries.length >= 1 && summaries.length <= 2, `the failures in ${summaries.length} summary line(s), not ${20} or more`)
  const failed = summaries.reduce((sum, l) => sum + ((l.failed as Record<string, number>).broadcast ?? 0), 0)
  t.equal(failed, 20, 'every failed broadcast counted')
  t.ok(summaries.some((l) => ((l.failed as Record<string, number>)['presence write'] ?? 0) > 0), 'failed presence writes counted')
  t.comment(`an outage of about 2.5 s logged ${chanxLines.length} lines: ${chanxLines.map((l) => l.msg).join(' | ')}`)
})
