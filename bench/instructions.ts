/**
 * Instructions per validated round trip, counted by valgrind's callgrind: a figure that does not move with
 * the machine's load, for the rows whose CPU-time ratio moves by more than their margin between runs (the
 * 4 KB round trip: 0.95–1.08 across three runs of one code).
 *
 *     node --import tsx bench/instructions.ts [variant…]   # default: messages-plugin messages-fastify-ws
 *     INSTR_FROM=2100 INSTR_TO=6100 INSTR_PAYLOAD=4096      # round trips of the two runs; the payload's text length
 *
 * Each variant's server (bench/server.ts, the build as users install it) runs twice under callgrind, for
 * INSTR_FROM and INSTR_TO round trips of the messages scenario's frames (10% invalid) over 10 connections;
 * the difference of the two totals over the difference of the counts is the figure, so start-up, the JIT's
 * first compilations and exit cancel out. Only user-space instructions are counted: the kernel's part of a
 * write, the same for every variant, is not. About four minutes per variant; never in CI.
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import WebSocket from 'ws'

const ROOT = path.resolve(__dirname, '..')
const FROM = Number(process.env.INSTR_FROM ?? 2100)
const TO = Number(process.env.INSTR_TO ?? 6100)
const PAYLOAD = Number(process.env.INSTR_PAYLOAD ?? 4096)
const CONNECTIONS = 10

const frame = (n: number | string): string => `{"action":"echo","payload":${JSON.stringify({ text: 'x'.repeat(PAYLOAD), n })}}`
const VALID = frame(42)
const INVALID = frame('42')

/** Total instructions of one server process that answered `count` round trips. */
function countInstructions (variant: string, count: number): Promise<number> {
  const child = spawn('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', 'node', '--import', 'tsx', 'bench/server.ts'], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    env: { ...process.env, BENCH_VARIANT: variant, NODE_ENV: 'production', WS_NO_BUFFER_UTIL: '1' }
  })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.on('message', (msg: { type: string, port?: number }) => {
    if (msg.type === 'ready') drive(msg.port!, count).then(() => child.send({ cmd: 'exit' }), (err: unknown) => { console.error(err); child.kill() })
  })
  return new Promise((resolve, reject) => {
    child.on('exit', () => {
      const collected = /Collected : (\d+)/.exec(stderr)
      if (collected === null) reject(new Error(`${variant}: no callgrind total\n${stderr.slice(-1000)}`))
      else resolve(Number(collected[1]))
    })
  })
}

/** `count` frames over CONNECTIONS sockets, the next sent on each as its last reply arrives. */
async function drive (port: number, count: number): Promise<void> {
  const sockets = await Promise.all(Array.from({ length: CONNECTIONS }, () => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`)
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })))
  let sent = 0
  let received = 0
  await new Promise<void>((resolve) => {
    const next = (ws: WebSocket): void => {
      if (sent >= count) return
      ws.send(sent % 10 === 9 ? INVALID : VALID)
      sent++
    }
    for (const ws of sockets) {
      ws.on('message', () => {
        if (++received === count) resolve()
        else next(ws)
      })
      next(ws)
    }
  })
  for (const ws of sockets) ws.terminate()
  await new Promise((resolve) => setTimeout(resolve, 500))
}

async function main (): Promise<void> {
  const variants = process.argv.slice(2)
  const list = variants.length > 0 ? variants : ['messages-plugin', 'messages-fastify-ws']
  const figures = new Map<string, number>()
  for (const variant of list) {
    const from = await countInstructions(variant, FROM)
    const to = await countInstructions(variant, TO)
    const perRoundTrip = (to - from) / (TO - FROM)
    figures.set(variant, perRoundTrip)
    console.log(`instructions ${variant}: ${Math.round(perRoundTrip)} per round trip (${FROM} → ${TO} round trips, payload ${PAYLOAD})`)
  }
  const [first, second] = [...figures.values()]
  if (figures.size === 2) console.log(`instructions ratio ${list[0]} / ${list[1]}: ${(first! / second!).toFixed(3)}`)
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
