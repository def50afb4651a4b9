import { test } from 'tap'
import type { AddressInfo } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx, { IsAuthenticated, jwtAuthentication } from '../plugin'
import { closeApp } from '../plugin/testing'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const TOTAL = 2000
const AT_ONCE = 200

/** Opens a socket and resolves with its close code once it has closed (the good ones close themselves). */
function handshake (url: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url)
    const timer = setTimeout(() => { ws.terminate() }, 10_000)
    ws.on('message', (data) => { if (data.toString().includes('"status_code":200')) ws.close(1000) })
    ws.on('close', (code) => { clearTimeout(timer); resolve(code) })
    ws.on('error', () => {})
  })
}

function activeHandles (): number {
  return (process as unknown as { _getActiveHandles (): unknown[] })._getActiveHandles().length
}

test('2,000 concurrent handshakes, half failing, leave no socket, timer, listener or memory behind', { timeout: 120_000 }, async (t) => {
  const app = Fastify()
  await app.register(jwt, { secret: 'a-storm-secret-of-at-least-32-chars!' })
  await app.register(websocket)
  await app.register(chanx, {
    authentication: [jwtAuthentication({ query: 'token' })],
    permissions: [IsAuthenticated],
    heartbeatInterval: 1000
  })
  app.get('/ws/rooms/:roomId', { websocket: true, groups: (ctx) => [`room:${(ctx.params as { roomId: string }).roomId}`] }, () => {})
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => closeApp(app))
  const base = `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/ws/rooms/`
  const good = app.jwt.sign({ sub: 'storm' })

  // Warm up, then take the baseline.
  await Promise.all(Array.from({ length: 20 }, (_, i) => handshake(`${base}${i % 5}?token=${i % 2 === 0 ? good : 'bad'}`)))
  await new Promise((resolve) => setTimeout(resolve, 100))
  gc()
  const baseline = { heap: process.memoryUsage().heapUsed, handles: activeHandles(), listeners: app.websocketServer.listenerCount('connection') }

  const codes: number[] = []
  for (let start = 0; start < TOTAL; start += AT_ONCE) {
    const batch = Array.from({ length: AT_ONCE }, (_, i) => {
      const n = start + i
      return handshake(`${base}${n % 50}?token=${n % 2 === 0 ? good : 'forged.' + good.slice(7)}`)
    })
    codes.push(...await Promise.all(batch))
  }
  t.equal(codes.filter((code) => code === 1000).length, TOTAL / 2, 'half got in and closed normally')
  t.equal(codes.filter((code) => code === 4401).length, TOTAL / 2, 'half were refused with 4401')

  const deadline = Date.now() + 5000
  while (app.websocketServer.clients.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(app.websocketServer.clients.size, 0, 'no server socket is left open')
  let members = 0
  for (let room = 0; room < 50; room++) members += app.chanx.hub.localSize(`room:${room}`)
  t.equal(members, 0, 'every socket left its group')
  t.equal(app.websocketServer.listenerCount('connection'), baseline.listeners, 'no listener was added per socket')
  t.ok(activeHandles() <= baseline.handles + 2, `no timer or handle is left behind (${activeHandles()} vs ${baseline.handles})`)
  gc()
  const grown = process.memoryUsage().heapUsed - baseline.heap
  t.ok(grown < 8 * 1024 * 1024, `the heap is back near its baseline (+${Math.round(grown / 1024)} KiB)`)
})
