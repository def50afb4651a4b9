// A broadcast across two processes over Redis (REDIS_URL: the redis-server run.mjs started), on the
// newest ioredis our range allows.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { buildApp, tokenFor } from './app.js'
import type { chatRoute } from './routes.js'

function firstMessage (socket: WebSocket): Promise<{ action: string, payload: unknown, [key: string]: unknown }> {
  return new Promise((resolve, reject) => {
    socket.once('message', (data) => resolve(JSON.parse(String(data))))
    socket.once('error', reject)
  })
}

test('a broadcast in one process reaches a member connected to another, over Redis', async () => {
  const redis = process.env.REDIS_URL
  assert.ok(redis, 'REDIS_URL is set')
  const peer = fork(fileURLToPath(new URL('./peer.js', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const app = await buildApp(redis)
  try {
    const peerPort = await new Promise<number>((resolve, reject) => {
      peer.once('message', (message) => resolve((message as { port: number }).port))
      peer.once('exit', (code) => reject(new Error(`the peer exited (${code})`)))
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = app.server.address() as AddressInfo
    const token = tokenFor(app, 'alice')
    const here = new WebSocket(`ws://127.0.0.1:${port}/ws/rooms/lobby?token=${token}`)
    const there = new WebSocket(`ws://127.0.0.1:${peerPort}/ws/rooms/lobby?token=${tokenFor(app, 'bob')}`)
    // Both listeners at once: the second authentication message may arrive while the first is awaited.
    const authentications = await Promise.all([firstMessage(here), firstMessage(there)])
    assert.deepEqual(authentications.map((message) => message.action), ['authentication', 'authentication'])

    const heard = firstMessage(there)
    here.send(JSON.stringify({ action: 'chat', payload: { text: 'across processes' } }))
    assert.deepEqual(await heard, { action: 'chat', payload: { text: 'across processes', from: 'alice' }, is_mine: false, is_current: false })

    // app.chanx.broadcast, typed by the route: a message its `outgoing` declares.
    const notice = firstMessage(there)
    await app.chanx.broadcast<typeof chatRoute>('room:lobby', { action: 'notice', payload: { text: 'from the server' } })
    assert.deepEqual(await notice, { action: 'notice', payload: { text: 'from the server' }, is_mine: false, is_current: false })
    here.close()
    there.close()
  } finally {
    peer.disconnect()
    await app.close()
    if (peer.exitCode === null) await new Promise((resolve) => peer.once('exit', resolve))
  }
})
