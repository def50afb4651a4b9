import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import chanx from '../plugin'
import { closeApp } from '../plugin/testing'
import { openReal } from './helpers/router-client'
import { RedisCluster, redisClusterSkipReason } from './helpers/redis-cluster'

// docs/observability.md "Logs during a failover": what one process logs while a Redis Cluster primary is
// killed and its replica promoted, with broadcasts every 100 ms and presence on five groups throughout.

test('a Redis Cluster failover logs one line lost, one line back, and the failed broadcasts and presence writes as summaries', { skip: redisClusterSkipReason(), timeout: 60_000 }, async (t) => {
  const cluster = await RedisCluster.start({ replicas: 1 })
  t.teardown(() => cluster.stop())
  const lines: Array<Record<string, unknown>> = []
  const app = Fastify({ logger: { level: 'warn', stream: { write (line: string) { lines.push(JSON.parse(line) as Record<string, unknown>) } } } })
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  const groups = ['a', 'b', 'c', 'd', 'e']
  await app.register(chanx, { redis: { cluster: cluster.nodes, publishTimeout: 500 }, presence: { ttl: 3000 } })
  app.get('/ws', { websocket: true, groups: () => groups }, () => {})
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = await openReal(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`)
  t.teardown(() => client.socket.terminate())
  await client.next()

  const state = { broadcasting: true }
  let sent = 0
  const loop = (async () => {
    while (state.broadcasting) {
      await app.chanx.broadcast(groups, { action: 'tick', payload: sent++ })
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })()
  const owner = await cluster.primaryOf('chanx:{g:a}')
  const started = Date.now()
  await cluster.failPrimary(owner)
  const back = Date.now() + 15_000
  while (!lines.some((l) => l.msg === 'fastify-chanx: Redis channel layer reconnected; resubscribing') && Date.now() < back) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  await new Promise((resolve) => setTimeout(resolve, 1000))
  state.broadcasting = false
  await loop
  const failover = Date.now() - started
  await closeApp(app)

  const chanxLines = lines.filter((l) => String(l.msg).startsWith('fastify-chanx:'))
  const summaries = chanxLines.filter((l) => String(l.msg).includes('failed in the last'))
  t.same(chanxLines.filter((l) => !summaries.includes(l)).map((l) => l.msg), [
    'fastify-chanx: Redis channel layer connection lost; reconnecting',
    'fastify-chanx: Redis channel layer reconnected; resubscribing'
  ], 'one line when the layer is lost, one when it is back')
  t.ok(summaries.length <= Math.ceil(failover / 10_000) + 1, `${summaries.length} summary line(s) over ${failover} ms`)
  t.comment(`failover of ${failover} ms with ${sent} broadcasts: ${chanxLines.length} lines: ${chanxLines.map((l) => l.msg).join(' | ')}`)
})
