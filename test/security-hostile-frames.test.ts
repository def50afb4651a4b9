import { randomBytes } from 'node:crypto'
import { connect as tcpConnect, type Socket } from 'node:net'
import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { DenyAll, defineSocketRoute, type FastifyChanxOptions } from '../plugin'
import { closeApp, connect } from '../plugin/testing'

const RATE_LIMITED = { action: 'error', payload: { detail: 'Rate limit exceeded' } }

async function floodApp (options: FastifyChanxOptions) {
  let handled = 0
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, options)
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { say: Type.String() },
    handlers: { say: () => { handled++ } }
  }))
  app.get('/refused', { websocket: true, permissions: [DenyAll] }, () => {})
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, handled: () => handled }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Sends `say` every `interval` ms until the socket closes or `limit` ms pass; resolves with the close code (0: still open). */
async function sendEvery (client: Awaited<ReturnType<typeof connect>>, interval: number, limit: number): Promise<number> {
  let code = 0
  const closed = client.closed(limit + 1000).then((c) => { code = c }, () => {})
  const started = Date.now()
  // eslint-disable-next-line no-unmodified-loop-condition -- the close handler sets it
  while (code === 0 && Date.now() - started < limit) {
    client.sendAction('say', 'x')
    await sleep(interval)
  }
  if (code === 0) await Promise.race([closed, sleep(50)])
  return code
}

test('a steady flood above the rate is closed with 1008 although tokens trickle in between', async (t) => {
  // 50 frames/s against 10/s: a token comes every 100 ms, so no more than 4 frames are dropped in a row.
  const { app } = await floodApp({ rateLimit: { messagesPerSecond: 10, burst: 5 } })
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  await client.authentication()
  const started = Date.now()
  t.equal(await sendEvery(client, 20, 3000), 1008, 'closed for flooding')
  t.equal(client.reason, 'Rate limit exceeded')
  t.ok(Date.now() - started < 2000, `closed within the first seconds (${Date.now() - started} ms)`)
})

test('a client that stays slightly over the rate is closed after 5 seconds of drops in a row', async (t) => {
  // 25 frames/s against 20/s with a burst of 10: the bucket is empty after 2 s, then about 5 drops a
  // second, never more than the burst.
  const { app } = await floodApp({ rateLimit: { messagesPerSecond: 20, burst: 10 } })
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  await client.authentication()
  const started = Date.now()
  t.equal(await sendEvery(client, 40, 9000), 1008, 'closed for staying over the rate')
  const elapsed = Date.now() - started
  t.ok(elapsed >= 4500 && elapsed < 8500, `after the bucket emptied and five seconds over the rate (${elapsed} ms)`)
  t.ok(client.messages.some((message) => JSON.stringify(message) === JSON.stringify(RATE_LIMITED)), 'dropped frames were answered first')
})

test('a client within the rate is never limited', async (t) => {
  const { app, handled } = await floodApp({ rateLimit: { messagesPerSecond: 20, burst: 5 } })
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  await client.authentication()
  t.equal(await sendEvery(client, 80, 2500), 0, 'still open')
  client.sendAction('ping')
  t.same(await client.receive(), { action: 'pong', payload: null })
  t.ok(handled() >= 20, `every frame was handled (${handled()})`)
  t.notOk(client.messages.some((message) => JSON.stringify(message) === JSON.stringify(RATE_LIMITED)), 'nothing was dropped')
})

function frame (opcode: number, fin: boolean, payload: Buffer): Buffer {
  const mask = randomBytes(4)
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!))
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length]), mask, masked])
}

/** A raw client: upgrades, then collects what the server writes; `gone` resolves when the server cut the TCP connection. */
function rawUpgrade (app: FastifyInstance, path: string): Promise<{ socket: Socket, received: () => Buffer, gone: Promise<number> }> {
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening')
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(address.port, '127.0.0.1')
    const chunks: Buffer[] = []
    const started = Date.now()
    const gone = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)))
    socket.on('error', () => {})
    socket.on('data', (chunk) => {
      chunks.push(chunk)
      if (chunks.length === 1) resolve({ socket, received: () => Buffer.concat(chunks), gone })
    })
    socket.on('connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${address.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    })
    setTimeout(() => reject(new Error('no answer to the upgrade')), 3000).unref()
  })
}

/** The close code of the first close frame the server sent after the upgrade response, or 0. */
function closeCodeIn (data: Buffer): number {
  let offset = data.indexOf('\r\n\r\n') + 4
  while (offset + 2 <= data.length) {
    const opcode = data[offset]! & 0x0f
    let length = data[offset + 1]! & 0x7f
    let header = 2
    if (length === 126) { length = data.readUInt16BE(offset + 2); header = 4 }
    if (opcode === 0x8) return length >= 2 ? data.readUInt16BE(offset + header) : 1005
    offset += header + length
  }
  return 0
}

test('a refused socket is cut once its refusal is flushed, not held for ws\'s 30 s close timeout', async (t) => {
  const { app } = await floodApp({})
  t.teardown(() => closeApp(app))
  const { socket, received, gone } = await rawUpgrade(app, '/refused')
  t.teardown(() => socket.destroy())
  // The client never answers the close; it starts an endless fragmented message instead.
  socket.write(frame(0x1, false, Buffer.from('a')))
  for (let i = 0; i < 500 && !socket.destroyed; i++) socket.write(frame(0x0, false, Buffer.from('b')))
  const elapsed = await Promise.race([gone, sleep(5000).then(() => -1)])
  t.ok(elapsed >= 0 && elapsed < 2000, `the server cut the connection (${elapsed} ms)`)
  t.equal(closeCodeIn(received()), 4403, 'after sending the refusal and its close frame')
  t.match(received().toString('latin1'), /"status_code":403/)
})

test('an unfinished message of many tiny fragments is closed with 1008 long before ws\'s 16,384', async (t) => {
  const { app } = await floodApp({})
  t.teardown(() => closeApp(app))
  const { socket, received } = await rawUpgrade(app, '/ws')
  t.teardown(() => socket.destroy())
  await sleep(50)
  socket.write(frame(0x1, false, Buffer.from('a')))
  // 64 KiB / 512 bytes a fragment = 128 fragments at most.
  for (let i = 0; i < 300; i++) socket.write(frame(0x0, false, Buffer.from('b')))
  const started = Date.now()
  while (closeCodeIn(received()) === 0 && Date.now() - started < 3000) await sleep(20)
  t.equal(closeCodeIn(received()), 1008, 'Too many message fragments')
})
