import { test } from 'tap'
import WebSocket from 'ws'
import { startChildApp } from './helpers/child-app'
import { RedisServer, redisSkipReason } from './helpers/redis'

const skip = redisSkipReason()

interface Socket { ws: WebSocket, messages: Array<Record<string, unknown>>, code: number | null, worker: number }

/** A socket on the shared port; resolves once the worker holding it has said who it is. */
function open (base: string, token: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/rooms/lobby?token=${token}`)
    const socket: Socket = { ws, messages: [], code: null, worker: 0 }
    ws.on('message', (data) => {
      const message = JSON.parse(data.toString()) as Record<string, unknown>
      socket.messages.push(message)
      if (message.action === 'worker') { socket.worker = message.payload as number; resolve(socket) }
    })
    ws.on('close', (code) => { socket.code = code })
    ws.once('error', reject)
  })
}

async function eventually (check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not true within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

test('example/cluster.ts: three workers behind one port share rooms, users and presence over Redis', { skip, timeout: 55_000 }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const base = await startChildApp(t, 'example/cluster.ts', { REDIS_URL: redis.url, WORKERS: '3' })

  const sockets: Socket[] = []
  t.teardown(() => { for (const s of sockets) s.ws.terminate() })
  // The primary hands connections to the listening workers in turn: open until all three hold one.
  const deadline = Date.now() + 20_000
  while (new Set(sockets.map((s) => s.worker)).size < 3 && Date.now() < deadline) {
    const { token } = await (await fetch(`${base}/token?user=u${sockets.length}`)).json() as { token: string }
    sockets.push(await open(base, token))
  }
  t.equal(new Set(sockets.map((s) => s.worker)).size, 3, `sockets on three workers (${sockets.length} opened)`)

  const response = await fetch(`${base}/rooms/lobby/broadcast`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'hi' })
  })
  t.equal(response.status, 200)
  await eventually(() => sockets.every((s) => s.messages.some((m) => m.action === 'message')))
  t.pass('a broadcast made on one worker reached the sockets of all three')

  const users = sockets.map((_, i) => `u${i}`).sort()
  await eventually(async () => JSON.stringify(await (await fetch(`${base}/rooms/lobby/presence`)).json()) ===
    JSON.stringify({ connections: sockets.length, users }))
  t.same(await (await fetch(`${base}/rooms/lobby/size`)).json(), { size: sockets.length })

  await fetch(`${base}/users/u0/logout`, { method: 'POST' })
  await eventually(() => sockets[0].code !== null)
  t.equal(sockets[0].code, 4401)
})
