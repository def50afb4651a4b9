import { EventEmitter } from 'node:events'
import { test } from 'tap'
import { RedisLayer } from '../plugin/channels/redis/layer'

// ioredis's Cluster says 'subscribersReady' after every attempt during a failover, failed ones included,
// and '-node' for each loss: the layer counts itself back once a second has passed since the last loss
// with a ready after it. Events that interleave with that second must not leave it "reconnecting" forever.
function clusterLayer (lines: string[]) {
  const subscriber = Object.assign(new EventEmitter(), { status: 'ready', isCluster: true })
  const publisher = Object.assign(new EventEmitter(), { status: 'ready', isCluster: true, quit: async () => {}, disconnect () {} })
  Object.assign(subscriber, { disconnect () {} })
  const logger = { warn (_: object, msg?: string) { lines.push(msg ?? '') }, error (_: object, msg?: string) { lines.push(msg ?? '') } }
  const layer = new RedisLayer({ cluster: true, publisher, subscriber } as never,
    { prefix: 'chanx:', connectTimeout: 1000, subscribeTimeout: 1000, publishTimeout: 1000, logger })
  return { layer, subscriber }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

test('a loss and a ready inside the settling second: back a second after that loss, not stuck', async (t) => {
  const lines: string[] = []
  const { layer, subscriber } = clusterLayer(lines)
  t.teardown(() => layer.close())
  subscriber.emit('-node', null, '127.0.0.1:7000')
  t.equal(layer.reconnecting, true)
  subscriber.emit('subscribersReady')
  await sleep(400)
  subscriber.emit('-node', null, '127.0.0.1:7000')
  await sleep(100)
  subscriber.emit('subscribersReady')
  await sleep(700)
  t.equal(layer.reconnecting, true, 'a second has not passed since the last loss')
  await sleep(600)
  t.equal(layer.reconnecting, false, 'back once it has')
  t.same(lines, [
    'fastify-chanx: Redis channel layer connection lost; reconnecting',
    'fastify-chanx: Redis channel layer reconnected; resubscribing'
  ])
})

test('a loss with no ready after it keeps the layer down until the next ready', async (t) => {
  const { layer, subscriber } = clusterLayer([])
  t.teardown(() => layer.close())
  subscriber.emit('-node', null, '127.0.0.1:7000')
  subscriber.emit('subscribersReady')
  await sleep(300)
  subscriber.emit('-node', null, '127.0.0.1:7000')
  await sleep(1500)
  t.equal(layer.reconnecting, true, 'no ready since the last loss')
  subscriber.emit('subscribersReady')
  await sleep(1200)
  t.equal(layer.reconnecting, false)
})
