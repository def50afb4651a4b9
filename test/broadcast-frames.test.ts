import { test } from 'tap'
import { request } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import WebSocket, { WebSocketServer } from 'ws'
import chanx, { defineSocketRoute } from '../plugin'
import { frameString, frameText, writeFramed, writeText } from '../plugin/core/ws-internals'

/** A raw TCP client that completes the upgrade and hands back every byte the server writes after it. */
function rawClient (port: number): Promise<{ socket: Socket, bytes: () => Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({
      port,
      host: '127.0.0.1',
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' }
    })
    req.on('upgrade', (_res, socket, head) => {
      const chunks: Buffer[] = [head]
      socket.on('data', (chunk: Buffer) => chunks.push(chunk))
      resolve({ socket, bytes: () => Buffer.concat(chunks) })
    })
    req.on('error', reject)
    req.end()
  })
}

test('a frame built once is byte for byte what ws sends for the same text (every header length, UTF-8)', async (t) => {
  const texts = ['{}', '{"a":"' + 'x'.repeat(200) + '"}', '{"é":"' + 'ü'.repeat(40000) + '"}', '{"emoji":"😀"}']
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
  t.teardown(() => new Promise((resolve) => wss.close(resolve)))
  await new Promise((resolve) => wss.once('listening', resolve))
  const written: boolean[] = []
  wss.on('connection', (socket) => {
    for (const text of texts) {
      socket.send(text)
      written.push(writeFramed(socket, frameText(Buffer.from(text))))
    }
  })
  const client = await rawClient((wss.address() as AddressInfo).port)
  t.teardown(() => client.socket.destroy())
  const expected = Buffer.concat(texts.flatMap((text) => { const frame = frameText(Buffer.from(text)); return [frame, frame] }))
  while (client.bytes().length < expected.length) await new Promise((resolve) => client.socket.once('data', resolve))
  t.same(written, [true, true, true, true], 'each idle socket took the framed bytes')
  t.ok(client.bytes().equals(expected), 'ws wrote the same bytes as the frame built once, for each text')
})

test('a text framed in one buffer is the frame ws builds, at each header length boundary', async (t) => {
  for (const length of [0, 1, 125, 126, 127, 65535, 65536, 70000]) {
    const ascii = 'a'.repeat(length)
    t.ok(frameString(ascii).equals(frameText(Buffer.from(ascii))), `${length} ASCII bytes`)
  }
  // Multi-byte characters whose UTF-8 length crosses the boundary that their UTF-16 length does not.
  for (const text of ['é'.repeat(63), 'é'.repeat(64), '😀'.repeat(16383), '😀'.repeat(16384), '€'.repeat(21846)]) {
    t.ok(frameString(text).equals(frameText(Buffer.from(text))), `${Buffer.byteLength(text)} UTF-8 bytes`)
  }
})

test('writeText sends one frame per short text, in order with what ws sends; it declines a long text and a busy sender', async (t) => {
  // 4,091 bytes and a 4-byte header fill Node's pooled buffers (under 4 KiB) exactly; one more byte does not.
  const texts = ['{}', '{"a":"' + 'x'.repeat(200) + '"}', 'a'.repeat(4091), 'a'.repeat(4092), '{"é":"' + 'ü'.repeat(40000) + '"}']
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
  t.teardown(() => new Promise((resolve) => wss.close(resolve)))
  await new Promise((resolve) => wss.once('listening', resolve))
  const written: boolean[] = []
  const sent = new Promise<boolean>((resolve) => {
    wss.on('connection', (socket) => {
      for (const text of texts) {
        written.push(writeText(socket, text))
        socket.send(text)
      }
      // A Blob keeps ws's sender busy until it is read: the next text must queue behind it, not overtake it.
      socket.send(new Blob(['b']))
      resolve(writeText(socket, 'late'))
    })
  })
  const client = await rawClient((wss.address() as AddressInfo).port)
  t.teardown(() => client.socket.destroy())
  const busy = await sent
  // Each text once from ws, and once more where writeText took it.
  const expected = Buffer.concat(texts.flatMap((text, k) => { const frame = frameText(Buffer.from(text)); return written[k] === true ? [frame, frame] : [frame] }))
  while (client.bytes().length < expected.length) await new Promise((resolve) => client.socket.once('data', resolve))
  t.same(written, [true, true, true, false, false], 'an idle socket took each short text as one frame; a frame past the buffer pool goes through ws')
  t.equal(busy, false, 'a sender with a send queued declines')
  t.ok(client.bytes().subarray(0, expected.length).equals(expected), 'the same bytes as ws sends, in order')
})

async function buildApp (perMessageDeflate: boolean) {
  const app = Fastify()
  await app.register(websocket, { options: { perMessageDeflate } })
  await app.register(chanx, { sendAuthenticationMessage: false })
  app.route(defineSocketRoute({
    url: '/ws',
    groups: () => ['g'],
    messages: { blobThenShout: Type.Object({ text: Type.String() }) },
    handlers: {
      // A Blob keeps ws's sender busy (it reads the Blob asynchronously): what follows must queue behind it.
      blobThenShout: (message, ctx) => {
        ctx.socket.send(new Blob(['first']))
        return ctx.broadcast({ action: 'shout', payload: message.payload }, { excludeSelf: false })
      }
    }
  }))
  app.route(defineSocketRoute({
    url: '/done',
    groups: () => ['h'],
    sendCompletion: true,
    messages: {},
    handlers: {}
  }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app
}

interface Received { text: string, binary: boolean }

async function open (port: number, perMessageDeflate: boolean, path = '/ws'): Promise<{ ws: WebSocket, received: Received[], next: (count: number) => Promise<Received[]> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate })
  const received: Received[] = []
  const waiters: (() => void)[] = []
  ws.on('message', (data, binary) => {
    received.push({ text: Buffer.isBuffer(data) ? data.toString() : String(data), binary })
    for (const wake of waiters.splice(0)) wake()
  })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const next = async (count: number): Promise<Received[]> => {
    while (received.length < count) await new Promise<void>((resolve) => waiters.push(resolve))
    return received.slice(0, count)
  }
  return { ws, received, next }
}

test('a compressed socket gets its broadcast copy compressed, once; an uncompressed one gets the shared frame', async (t) => {
  const app = await buildApp(true)
  t.teardown(() => app.close())
  const port = (app.server.address() as AddressInfo).port
  const compressed = await open(port, true)
  const plain = await open(port, false)
  t.teardown(() => { compressed.ws.terminate(); plain.ws.terminate() })
  t.equal(compressed.ws.extensions, 'permessage-deflate')
  t.equal(plain.ws.extensions, '')
  const before = (compressed.ws as unknown as { _socket: Socket })._socket.bytesRead
  const text = 'a'.repeat(50_000)
  await app.chanx.broadcast('g', { action: 'big', payload: { text } })
  await app.chanx.broadcast('g', { action: 'small', payload: { n: 1 } })
  const expected = [
    JSON.stringify({ action: 'big', payload: { text }, is_mine: false, is_current: false }),
    JSON.stringify({ action: 'small', payload: { n: 1 }, is_mine: false, is_current: false })
  ]
  t.same((await compressed.next(2)).map((m) => m.text), expected)
  t.same((await plain.next(2)).map((m) => m.text), expected)
  const read = (compressed.ws as unknown as { _socket: Socket })._socket.bytesRead - before
  t.ok(read < 5_000, `the 50 KB broadcast crossed the compressed socket deflated (${read} bytes read)`)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(compressed.received.length, 2, 'no second copy')
  t.equal(plain.received.length, 2, 'no second copy')
})

test('a socket whose ws sender is busy gets the broadcast after what it was sending, once', async (t) => {
  const app = await buildApp(false)
  t.teardown(() => app.close())
  const port = (app.server.address() as AddressInfo).port
  const sender = await open(port, false)
  const other = await open(port, false)
  t.teardown(() => { sender.ws.terminate(); other.ws.terminate() })
  sender.ws.send(JSON.stringify({ action: 'blobThenShout', payload: { text: 'hi' } }))
  const shout = JSON.stringify({ action: 'shout', payload: { text: 'hi' }, is_mine: false, is_current: true })
  const got = await sender.next(2)
  t.same(got, [{ text: 'first', binary: true }, { text: shout, binary: false }],
    'the Blob first, then the broadcast: the shared frame did not overtake the pending write')
  t.same((await other.next(1)).map((m) => m.text), [JSON.stringify({ action: 'shout', payload: { text: 'hi' }, is_mine: false, is_current: false })])
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(sender.received.length, 2, 'no second copy')
  t.equal(other.received.length, 1, 'no second copy')
})

test('where routes send completions, each copy and its group_complete arrive in order, once, compressed or not', async (t) => {
  const app = await buildApp(true)
  t.teardown(() => app.close())
  const port = (app.server.address() as AddressInfo).port
  const compressed = await open(port, true, '/done')
  const plain = await open(port, false, '/done')
  t.teardown(() => { compressed.ws.terminate(); plain.ws.terminate() })
  await app.chanx.broadcast('h', { action: 'one' })
  await app.chanx.broadcast('h', { action: 'two', payload: { text: 'b'.repeat(5000) } })
  const expected = [
    '{"action":"one","is_mine":false,"is_current":false}',
    '{"action":"group_complete","payload":null}',
    JSON.stringify({ action: 'two', payload: { text: 'b'.repeat(5000) }, is_mine: false, is_current: false }),
    '{"action":"group_complete","payload":null}'
  ]
  t.same((await compressed.next(4)).map((m) => m.text), expected)
  t.same((await plain.next(4)).map((m) => m.text), expected)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(compressed.received.length, 4, 'no second copy')
  t.equal(plain.received.length, 4, 'no second copy')
})
