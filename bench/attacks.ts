/**
 * The hostile-client attacks of the threat model, replayed against a real server in a child process, with
 * what each leaves behind: the server's heap and RSS growth (after a forced GC), the time until the server
 * dropped the attacker, and whether the server process survived.
 *
 *     node --import tsx bench/attacks.ts [clients]
 *
 * Loopback only, bounded counts. Not run in CI; figures go to the closing notes and docs/security.md.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { connect as tcpConnect, type Socket } from 'node:net'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { DenyAll, defineSocketRoute } from '../plugin'

const CLIENTS = Number(process.argv[2] ?? 20)

if (process.env.ATTACK_SERVER === '1') {
  void (async () => {
    const app = Fastify()
    await app.register(websocket)
    await app.register(chanx, { rateLimit: { messagesPerSecond: 100, burst: 200 }, heartbeatInterval: 0 })
    const big = 'x'.repeat(60_000)
    app.route(defineSocketRoute({
      url: '/ws',
      messages: { say: Type.String(), big: Type.Null() },
      handlers: { say: () => undefined, big: () => ({ action: 'big', payload: big }) }
    }))
    app.get('/refused', { websocket: true, permissions: [DenyAll] }, () => {})
    await app.listen({ port: 0, host: '127.0.0.1' })
    const address = app.server.address() as { port: number }
    process.on('message', (message: { cmd: string }) => {
      if (message.cmd === 'mem') {
        globalThis.gc?.()
        const { rss, heapUsed } = process.memoryUsage()
        process.send!({ type: 'mem', rss, heapUsed, sockets: app.websocketServer.clients.size })
      } else if (message.cmd === 'exit') {
        void app.close().then(() => process.exit(0))
      }
    })
    process.send!({ type: 'ready', port: address.port })
  })()
} else {
  void main()
}

interface Mem { rss: number, heapUsed: number, sockets: number }

function request (child: ChildProcess, cmd: string): Promise<Mem> {
  return new Promise((resolve) => {
    const onMessage = (message: { type: string } & Mem): void => {
      if (message.type !== 'mem') return
      child.off('message', onMessage)
      resolve(message)
    }
    child.on('message', onMessage)
    child.send({ cmd })
  })
}

function frame (opcode: number, fin: boolean, payload: Buffer): Buffer {
  const mask = randomBytes(4)
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!))
  const header = payload.length < 126
    ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length])
    : Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, payload.length >> 8, payload.length & 0xff])
  return Buffer.concat([header, mask, masked])
}

/**
 * Upgrades a raw TCP client. `dropped` resolves with the ms from the upgrade until the server cut the TCP
 * connection, `closeFrame` until the server's close frame arrived (a 0x88 byte: every other frame here is
 * ASCII text with short headers). A paused client sees neither: the server's socket count tells instead.
 */
function upgrade (port: number, path: string): Promise<{ socket: Socket, dropped: Promise<number>, closeFrame: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1')
    let upgradedAt = 0
    const dropped = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - upgradedAt)))
    let sawClose: (ms: number) => void = () => {}
    const closeFrame = new Promise<number>((resolve) => { sawClose = resolve })
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => { if (upgradedAt !== 0 && chunk.includes(0x88)) sawClose(Date.now() - upgradedAt) })
    socket.once('data', (chunk: Buffer) => {
      upgradedAt = Date.now()
      const head = chunk.indexOf('\r\n\r\n')
      if (chunk.subarray(head + 4).includes(0x88)) sawClose(0)
      resolve({ socket, dropped, closeFrame })
    })
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`))
    setTimeout(() => reject(new Error('no upgrade')), 5000).unref()
  })
}

const within = (promise: Promise<number>, ms: number): Promise<number> => Promise.race([promise, new Promise<number>((resolve) => setTimeout(() => resolve(-1), ms))])
const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(2) + ' MiB'
const median = (values: number[]): number => values.sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? -1

/** `run` resolves with [ms to the close frame, ms to the TCP cut] (-1: not seen); the server's sockets are polled too. */
async function attack (child: ChildProcess, port: number, name: string, run: (port: number) => Promise<[number, number]>): Promise<void> {
  const before = await request(child, 'mem')
  const started = Date.now()
  let peakHeap = 0
  let peakRss = 0
  let serverFreedAt = -1
  const polling = (async () => {
    while (Date.now() - started < 40_000) {
      const mem = await request(child, 'mem')
      peakHeap = Math.max(peakHeap, mem.heapUsed - before.heapUsed)
      peakRss = Math.max(peakRss, mem.rss - before.rss)
      if (mem.sockets <= before.sockets && Date.now() - started > 100) { serverFreedAt = Date.now() - started; return }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  })()
  const times = await Promise.all(Array.from({ length: CLIENTS }, () => run(port)))
  await polling
  const after = await request(child, 'mem')
  const closes = times.map(([close]) => close).filter((t) => t >= 0)
  const cuts = times.map(([, cut]) => cut).filter((t) => t >= 0)
  console.log(`attack ${name}: clients=${CLIENTS} close_frames=${closes.length} median_ms_to_close_frame=${median(closes)} ` +
    `tcp_cut=${cuts.length} median_ms_to_cut=${median(cuts)} ms_until_server_held_no_socket=${serverFreedAt} ` +
    `peak_heap_growth=${mib(peakHeap)} peak_rss_growth=${mib(peakRss)} heap_after=${mib(after.heapUsed - before.heapUsed)} ` +
    `server_alive=${child.exitCode === null}`)
}

async function main (): Promise<void> {
  const child = fork(__filename, [], { env: { ...process.env, ATTACK_SERVER: '1' }, execArgv: ['--import', 'tsx', '--expose-gc'] })
  const port = await new Promise<number>((resolve) => child.on('message', (m: { type: string, port: number }) => { if (m.type === 'ready') resolve(m.port) }))

  // A refused client that never answers the close and starts an endless message of 16,000 one-byte fragments.
  await attack(child, port, 'refused-fragments', async (port) => {
    const { socket, dropped, closeFrame } = await upgrade(port, '/refused')
    socket.write(frame(0x1, false, Buffer.from('a')))
    for (let i = 0; i < 16_000 && !socket.destroyed; i++) socket.write(frame(0x0, false, Buffer.from('b')))
    return Promise.all([within(closeFrame, 35_000), within(dropped, 35_000)])
  })
  // An accepted client doing the same.
  await attack(child, port, 'accepted-fragments', async (port) => {
    const { socket, dropped, closeFrame } = await upgrade(port, '/ws')
    socket.write(frame(0x1, false, Buffer.from('a')))
    for (let i = 0; i < 16_000 && !socket.destroyed; i++) socket.write(frame(0x0, false, Buffer.from('b')))
    return Promise.all([within(closeFrame, 35_000), within(dropped, 35_000)])
  })
  // A slow reader: asks for 200 replies of 60 KB and never reads (paused: only the server's count shows the cut).
  await attack(child, port, 'slow-reader', async (port) => {
    const { socket } = await upgrade(port, '/ws')
    socket.pause()
    const ask = frame(0x1, true, Buffer.from('{"action":"big","payload":null}'))
    for (let i = 0; i < 200; i++) socket.write(ask)
    await new Promise((resolve) => setTimeout(resolve, 5000))
    socket.destroy()
    return [-1, -1]
  })
  // A steady flood at 5,000 frames/s against the default limit (100/s, burst 200).
  await attack(child, port, 'steady-flood', async (port) => {
    const { socket, dropped, closeFrame } = await upgrade(port, '/ws')
    const say = frame(0x1, true, Buffer.from('{"action":"say","payload":"x"}'))
    const timer = setInterval(() => { for (let i = 0; i < 50; i++) if (!socket.destroyed) socket.write(say) }, 10)
    const times = await Promise.all([within(closeFrame, 10_000), within(dropped, 10_000)])
    clearInterval(timer)
    socket.destroy()
    return times
  })
  child.send({ cmd: 'exit' })
}
