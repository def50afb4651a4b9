/*
 * Fan-out of one broadcast to N real ws sockets on 127.0.0.1, through the ChannelHub (memory layer, and
 * Redis layer with the broadcast made by a second hub so it crosses Redis), against a loop over the raw
 * server-side sockets sending a pre-serialized string. Time = from the send until every client has the
 * message; median of ROUNDS. Run: node --import tsx bench/fanout.ts
 */
import { once } from 'node:events'
import { WebSocketServer, WebSocket } from 'ws'
import { ChannelHub, type ChannelMember } from '../plugin/groups'
import { createRedisLayer } from '../plugin/redis-layer'
import { RedisServer } from '../test/helpers/redis'

const SIZES = (process.env.SIZES ?? '1,100,1000,5000').split(',').map(Number)
const ROUNDS = Number(process.env.ROUNDS ?? 15)
const message = { action: 'chat', payload: { room: 'lobby', text: 'hello everyone', n: 42 } }

async function sockets (n: number): Promise<{ server: WebSocket[], clients: WebSocket[], wss: WebSocketServer }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  const { port } = wss.address() as { port: number }
  const server: WebSocket[] = []
  wss.on('connection', (ws) => server.push(ws))
  const clients: WebSocket[] = []
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(200, n - i) }, () => new WebSocket(`ws://127.0.0.1:${port}`))
    await Promise.all(batch.map((c) => once(c, 'open')))
    clients.push(...batch)
  }
  while (server.length < n) await new Promise((resolve) => setTimeout(resolve, 5))
  return { server, clients, wss }
}

/** ms until every client got one message after `send()` ran. */
async function timeOne (clients: WebSocket[], send: () => unknown): Promise<number> {
  let left = clients.length
  let resolve!: () => void
  const done = new Promise<void>((r) => { resolve = r })
  const onMessage = (): void => { if (--left === 0) resolve() }
  for (const c of clients) c.once('message', onMessage)
  const start = process.hrtime.bigint()
  send()
  await done
  return Number(process.hrtime.bigint() - start) / 1e6
}

async function median (clients: WebSocket[], send: () => unknown): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < ROUNDS; i++) times.push(await timeOne(clients, send))
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]
}

function member (ws: WebSocket, i: number): ChannelMember {
  return { id: String(i), userKey: `user${i}`, send (data) { ws.send(data) }, close (code, reason) { ws.close(code, reason) } }
}

async function main (): Promise<void> {
  const redis = await RedisServer.start()
  try {
    for (const n of SIZES) {
      const { server, clients, wss } = await sockets(n)
      const baseline = await median(clients, () => {
        const data = JSON.stringify(message)
        for (let i = 0; i < server.length; i++) server[i].send(data)
      })

      const memory = new ChannelHub()
      await Promise.all(server.map((ws, i) => memory.join(member(ws, i), 'lobby')))
      const viaMemory = await median(clients, () => memory.broadcast('lobby', message))
      await memory.close()

      const receiving = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }) })
      const sending = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }) })
      await Promise.all(server.map((ws, i) => receiving.join(member(ws, i), 'lobby')))
      const viaRedis = await median(clients, () => sending.broadcast('lobby', message))
      await receiving.close()
      await sending.close()

      for (const [layer, x] of [['memory', viaMemory], ['redis', viaRedis]] as const) {
        console.log(`bench fanout-${n}-${layer}: plugin=${x.toFixed(3)}ms baseline=${baseline.toFixed(3)}ms ratio=${(x / baseline).toFixed(2)}`)
      }
      for (const c of clients) c.terminate()
      await new Promise((resolve) => wss.close(resolve))
    }
  } finally {
    await redis.stop()
  }
}

main().catch((err) => { console.error(err); process.exitCode = 1 })
