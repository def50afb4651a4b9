// A broadcast over a Redis Cluster (sharded pub/sub; REDIS_CLUSTER: the three nodes run.mjs started), on the
// newest ioredis our range allows. Registering runs the canary of the ioredis reach-in: the slot-refresh
// throttle must see ioredis's own refresh.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { buildApp, tokenFor } from './app.js'

function nextMessage (socket: WebSocket): Promise<{ action: string, [key: string]: unknown }> {
  return new Promise((resolve, reject) => {
    socket.once('message', (data) => resolve(JSON.parse(String(data))))
    socket.once('error', reject)
  })
}

test('two apps on one Redis Cluster: a broadcast on one reaches a member of the other', async () => {
  const nodes = process.env.REDIS_CLUSTER?.split(',').map((node) => {
    const [host, port] = node.split(':')
    return { host: host!, port: Number(port) }
  })
  assert.ok(nodes !== undefined && nodes.length === 3, 'REDIS_CLUSTER names three nodes')
  const first = await buildApp({ cluster: nodes })
  const second = await buildApp({ cluster: nodes })
  try {
    await first.listen({ host: '127.0.0.1', port: 0 })
    await second.listen({ host: '127.0.0.1', port: 0 })
    const port = (app: typeof first): number => (app.server.address() as AddressInfo).port
    const here = new WebSocket(`ws://127.0.0.1:${port(first)}/ws/rooms/cluster?token=${tokenFor(first, 'alice')}`)
    const there = new WebSocket(`ws://127.0.0.1:${port(second)}/ws/rooms/cluster?token=${tokenFor(first, 'bob')}`)
    const authentications = await Promise.all([nextMessage(here), nextMessage(there)])
    assert.deepEqual(authentications.map((message) => message.action), ['authentication', 'authentication'])
    const heard = nextMessage(there)
    here.send(JSON.stringify({ action: 'chat', payload: { text: 'over the cluster' } }))
    assert.deepEqual(await heard, { action: 'chat', payload: { text: 'over the cluster', from: 'alice' }, is_mine: false, is_current: false })
    here.close()
    there.close()
  } finally {
    await first.close()
    await second.close()
  }
})
