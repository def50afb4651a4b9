// fastify-chanx/client against a real port, on the newest dependencies our ranges allow.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { createClient } from 'fastify-chanx/client'
import type { chatRoute } from './routes.js'
import { buildApp, tokenFor } from './app.js'

test('the typed client over a real port: handshake, request and reply, a broadcast it receives', async () => {
  const app = await buildApp()
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const url = `ws://127.0.0.1:${port}/ws/rooms/lobby`
  const alice = createClient<typeof chatRoute>(url, { getToken: async () => tokenFor(app, 'alice'), tokenIn: 'protocol' })
  const bob = createClient<typeof chatRoute>(url, { getToken: async () => tokenFor(app, 'bob') })
  try {
    await alice.connect()
    await bob.connect()
    const reply = await alice.request('move', { x: 7 })
    assert.deepEqual(reply.action === 'moved' ? reply.payload : null, { x: 7 })
    const heard = new Promise<string>((resolve) => bob.on('message:chat', (message) => resolve(`${message.payload.from}: ${message.payload.text}`)))
    alice.send('chat', { text: 'over a port' })
    assert.equal(await heard, 'alice: over a port')
  } finally {
    alice.close()
    bob.close()
    await app.close()
  }
})

test('a bearer.<jwt> subprotocol authenticates and is never echoed; ws selects the other one offered', async () => {
  const app = await buildApp()
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  try {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/ws/rooms/lobby`, [`bearer.${tokenFor(app, 'erin')}`, 'chanx'])
    const first = await new Promise<string>((resolve, reject) => {
      socket.once('message', (data) => resolve(String(data)))
      socket.once('error', reject)
    })
    assert.equal(JSON.parse(first).payload.status_code, 200)
    assert.equal(socket.protocol, 'chanx')
    socket.close()
  } finally {
    await app.close()
  }
})
