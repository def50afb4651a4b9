/**
 * The send path alone: server CPU per frame for ws's `socket.send(text)` against fastify-chanx's
 * `writeText` (core/ws-internals.ts: the frame built in one buffer and written as one piece), in the same
 * process, alternating, on one socket whose reader (a child process) keeps up.
 *
 *   npm run bench:send          # BENCH_SEND_ROUNDS=5
 *
 * Each round sends 40,000 short replies (about 70 bytes) and 10,000 of 2 KB by each way, five at a time
 * then a turn of the event loop, waiting for the socket to drain between batches so that every write is
 * its own system call, as a reply to one request is. Prints the median µs per frame and the ratio.
 */
import { fork } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { writeText } from '../plugin/core/ws-internals'

const ROUNDS = Number(process.env.BENCH_SEND_ROUNDS ?? 5)
const SHORT = JSON.stringify({ action: 'echo', payload: { text: 'hello world, a routed reply', n: 12345 } })
// Under 4 KiB: frames from 4 KiB up go through ws's send either way (core/ws-internals.ts POOLED_FRAME_BYTES).
const LONG = JSON.stringify({ action: 'echo', payload: { text: 'x'.repeat(2000), n: 12345 } })

type Send = (socket: WebSocket, text: string) => void
const viaWs: Send = (socket, text) => { socket.send(text) }
const viaWriteText: Send = (socket, text) => { if (!writeText(socket, text)) socket.send(text) }

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

async function cpuPerFrame (socket: WebSocket, send: Send, text: string, count: number): Promise<number> {
  const stream = (socket as unknown as { _socket: { writableLength: number } })._socket
  const start = process.cpuUsage()
  for (let i = 0; i < count; i += 5) {
    for (let j = 0; j < 5; j++) send(socket, text)
    await turn()
    while (stream.writableLength > 0) await new Promise((resolve) => setTimeout(resolve, 1))
  }
  const used = process.cpuUsage(start)
  return (used.user + used.system) / count
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

async function measure (socket: WebSocket): Promise<void> {
  await cpuPerFrame(socket, viaWs, SHORT, 20_000)
  await cpuPerFrame(socket, viaWriteText, SHORT, 20_000)
  const results = { 'ws send, 70 B': [] as number[], 'writeText, 70 B': [] as number[], 'ws send, 2 KB': [] as number[], 'writeText, 2 KB': [] as number[] }
  for (let round = 0; round < ROUNDS; round++) {
    // Alternating which goes first, so that neither always runs on a warmer or colder machine.
    const order: Array<[keyof typeof results, Send, string, number]> = [
      ['ws send, 70 B', viaWs, SHORT, 40_000], ['writeText, 70 B', viaWriteText, SHORT, 40_000],
      ['ws send, 2 KB', viaWs, LONG, 10_000], ['writeText, 2 KB', viaWriteText, LONG, 10_000]
    ]
    if (round % 2 === 1) order.reverse()
    for (const [name, send, text, count] of order) results[name].push(await cpuPerFrame(socket, send, text, count))
  }
  for (const [name, values] of Object.entries(results)) {
    console.log(`${name.padEnd(16)} ${median(values).toFixed(2)} µs/frame  (rounds: ${values.map((v) => v.toFixed(2)).join(' ')})`)
  }
  console.log(`bench send-path 70 B: writeText / ws send = ${(median(results['writeText, 70 B']) / median(results['ws send, 70 B'])).toFixed(3)}`)
  console.log(`bench send-path 2 KB: writeText / ws send = ${(median(results['writeText, 2 KB']) / median(results['ws send, 2 KB'])).toFixed(3)}`)
}

if (process.argv[2] === 'reader') {
  const reader = new WebSocket(process.argv[3]!)
  reader.on('message', () => {})
  reader.on('close', () => process.exit(0))
} else {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false })
  wss.on('listening', () => {
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`
    fork(__filename, ['reader', url], { execArgv: ['--import', 'tsx'] })
  })
  wss.once('connection', (socket) => {
    measure(socket).then(() => {
      socket.close()
      wss.close()
    }, (err: unknown) => {
      console.error(err)
      process.exit(1)
    })
  })
}
