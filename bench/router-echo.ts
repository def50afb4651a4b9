/**
 * Frames per second of a validated, routed echo (fastify-chanx) against a raw @fastify/websocket echo that
 * does JSON.parse plus a hand-written check, over real sockets on 127.0.0.1, in one run.
 *
 *     node --import tsx bench/router-echo.ts [frames]
 *
 * Prints `bench router-echo: plugin=<frames/s> baseline=<frames/s> ratio=<plugin/baseline>`.
 */
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import WebSocket from 'ws'
import chanx, { defineSocketRoute } from '../plugin'

const FRAMES = Number(process.argv[2] ?? 50000)
const WINDOW = 64
const ROUNDS = 3

const Echo = Type.Object({ text: Type.String({ maxLength: 1000 }), n: Type.Integer() })

async function pluginApp (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(websocket)
  // Off as in bench/server.ts: the echo sends far above the default 100 frames/s, and the limiter closes with 1008.
  await app.register(chanx, { sendAuthenticationMessage: false, rateLimit: false, heartbeatInterval: 0 })
  app.route(defineSocketRoute({
    url: '/echo',
    messages: { echo: Echo },
    handlers: { echo: (message) => ({ action: 'echo', payload: message.payload }) }
  }))
  return app
}

async function baselineApp (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(websocket)
  app.get('/echo', { websocket: true }, (socket) => {
    socket.on('message', (data, isBinary) => {
      if (isBinary) return
      let message: unknown
      try {
        message = JSON.parse(data.toString())
      } catch {
        socket.send('{"action":"error","payload":{"detail":"Invalid JSON"}}')
        return
      }
      const m = message as { action?: unknown, payload?: { text?: unknown, n?: unknown } } | null
      if (m !== null && typeof m === 'object' && m.action === 'echo' && m.payload !== null && typeof m.payload === 'object' &&
        typeof m.payload.text === 'string' && m.payload.text.length <= 1000 && Number.isInteger(m.payload.n)) {
        socket.send(JSON.stringify({ action: 'echo', payload: m.payload }))
      } else {
        socket.send('{"action":"error","payload":{"detail":"invalid"}}')
      }
    })
  })
  return app
}

/** Sends FRAMES echo frames keeping WINDOW in flight; resolves with frames per second. */
async function measure (app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const socket = new WebSocket(`ws://127.0.0.1:${port}/echo`)
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
  const frame = JSON.stringify({ action: 'echo', payload: { text: 'hello, chanx', n: 42 } })
  let sent = 0
  let received = 0
  const start = process.hrtime.bigint()
  await new Promise<void>((resolve) => {
    socket.on('message', () => {
      received++
      if (received === FRAMES) resolve()
      else if (sent < FRAMES) { sent++; socket.send(frame) }
    })
    for (; sent < WINDOW && sent < FRAMES; sent++) socket.send(frame)
  })
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  socket.terminate()
  for (const client of app.websocketServer.clients) client.terminate()
  await app.close()
  return FRAMES / seconds
}

async function main (): Promise<void> {
  let plugin = 0
  let baseline = 0
  // Alternate and keep each side's best round, so warm-up and noise hit both alike.
  for (let round = 0; round < ROUNDS; round++) {
    baseline = Math.max(baseline, await measure(await baselineApp()))
    plugin = Math.max(plugin, await measure(await pluginApp()))
  }
  console.log(`bench router-echo: plugin=${Math.round(plugin)} baseline=${Math.round(baseline)} ratio=${(plugin / baseline).toFixed(2)}`)
}

main().catch((err: unknown) => { console.error(err); process.exitCode = 1 })
