import { test } from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx from '../plugin'
import { closeApp } from '../plugin/testing'

async function serve (websocketOptions: Record<string, unknown> = {}) {
  const app = Fastify()
  await app.register(websocket, { options: websocketOptions })
  await app.register(chanx)
  const seen: number[] = []
  app.get('/ws', { websocket: true }, (socket) => { socket.on('message', (data: Buffer) => seen.push(data.length)) })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, seen, url: `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/ws` }
}

function sendAndClose (url: string, size: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('no close within 3 s')) }, 3000)
    ws.once('message', () => {
      ws.send(Buffer.alloc(size, 'a'))
      setTimeout(() => ws.close(1000), 100)
    })
    ws.on('close', (code) => { clearTimeout(timer); resolve(code) })
    ws.on('error', () => {})
  })
}

test('an oversized frame closes the socket with 1009 before any handler sees it', async (t) => {
  const { app, seen, url } = await serve()
  t.teardown(() => closeApp(app))
  t.equal(await sendAndClose(url, 64 * 1024 + 1), 1009)
  t.equal(await sendAndClose(url, 64 * 1024), 1000, 'a frame at the limit is fine')
  t.same(seen, [64 * 1024])
})

test('a maxPayload given to @fastify/websocket is left alone', async (t) => {
  const { app, url } = await serve({ maxPayload: 256 * 1024 })
  t.teardown(() => closeApp(app))
  t.equal(await sendAndClose(url, 200 * 1024), 1000)
})
