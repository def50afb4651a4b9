/**
 * What keeping recoverable history costs (docs/recovery.md):
 *
 * 1. Broadcast CPU per delivery, history on against off, on the in-process layer and over Redis: each
 *    variant is a fresh server process (this file, `server <variant>`) with CLIENTS real ws clients in
 *    one group; the server broadcasts BROADCASTS messages in batches and reports its own CPU
 *    (process.cpuUsage) from the first broadcast until the harness has received every copy.
 * 2. The time to replay 1,000 messages: a client resumes from offset 0 of a group holding 1,000 kept
 *    messages; measured from the socket's creation to the last replayed message, against a fresh
 *    connection to the same group (no replay) in the same run.
 * 3. Over Redis, what one resume costs the app and Redis, and what one account resuming 25 times a second
 *    does to another process's Redis latency, with the resume budget and without (bench/history-resume.ts).
 *
 *     node --import tsx bench/history.ts            # 5 rounds; rewrites the history section of bench/RESULTS.md
 *     BENCH_ROUNDS=3 BENCH_CLIENTS=100 node --import tsx bench/history.ts     # any override: writes nothing
 *     BENCH_WRITE=1 / BENCH_WRITE=0                  # write, or not, whatever the settings
 *
 * Ratios are medians of per-round ratios, each round running every variant once, in turn.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx, { type FastifyChanxOptions } from '../plugin'
import { newRecoveryToken } from '../plugin/connection/resume'
import { RedisServer, redisSkipReason } from '../test/helpers/redis'
import { sectionMarks, withSection } from './common'
import { ATTACK_SETTINGS, formatAttack, formatCost, resumeAttack, resumeCost, type AttackWindow, type ResumeCost } from './history-resume'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 200)
const BROADCASTS = Number(process.env.BENCH_BROADCASTS ?? 2000)
const REPLAYED = 1000

type Variant = 'memory-off' | 'memory-on' | 'redis-off' | 'redis-on'

function options (variant: Variant, redisUrl: string | undefined): FastifyChanxOptions {
  const out: FastifyChanxOptions = { heartbeatInterval: 0 }
  if (variant.endsWith('-on')) out.history = true
  if (variant.startsWith('redis')) out.redis = redisUrl!
  return out
}

async function buildApp (chanxOptions: FastifyChanxOptions) {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, chanxOptions)
  app.get('/ws', { websocket: true, groups: () => ['room'] }, () => {})
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port }
}

// ---------------------------------------------------------------- the server process

async function serve (variant: Variant): Promise<void> {
  const { app, port } = await buildApp(options(variant, process.env.REDIS_URL))
  const message = { action: 'tick', payload: { text: 'a message of some ordinary length, like a chat line', n: 0 } }
  let start: NodeJS.CpuUsage | null = null
  process.on('message', async (command: { cmd: string, count?: number }) => {
    if (command.cmd === 'run') {
      start = process.cpuUsage()
      for (let i = 0; i < command.count!; i++) {
        message.payload.n = i
        await app.chanx.broadcast('room', message)
        if (i % 20 === 19) await new Promise((resolve) => setImmediate(resolve))
      }
    } else if (command.cmd === 'cpu') {
      const used = process.cpuUsage(start!)
      process.send!({ cpu: used.user + used.system })
    } else if (command.cmd === 'exit') {
      await app.close()
      process.exit(0)
    }
  })
  process.send!({ port })
}

// ---------------------------------------------------------------- the harness

function once<T> (child: ChildProcess): Promise<T> {
  return new Promise((resolve) => child.once('message', (m) => resolve(m as T)))
}

async function openClients (port: number, count: number): Promise<{ sockets: WebSocket[], received: () => number }> {
  let received = 0
  const sockets = await Promise.all(Array.from({ length: count }, () => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
    ws.once('message', () => {
      ws.on('message', () => { received++ })
      resolve(ws)
    })
    ws.once('error', reject)
  })))
  return { sockets, received: () => received }
}

async function cpuPerDelivery (variant: Variant, redisUrl: string | undefined): Promise<number> {
  const child = fork(__filename, ['server', variant], { execArgv: ['--import', 'tsx'], env: { ...process.env, REDIS_URL: redisUrl ?? '' } })
  const { port } = await once<{ port: number }>(child)
  const clients = await openClients(port, CLIENTS)
  const expected = CLIENTS * BROADCASTS
  child.send({ cmd: 'run', count: BROADCASTS })
  while (clients.received() < expected) await new Promise((resolve) => setTimeout(resolve, 5))
  child.send({ cmd: 'cpu' })
  const { cpu } = await once<{ cpu: number }>(child)
  for (const ws of clients.sockets) ws.terminate()
  child.send({ cmd: 'exit' })
  await new Promise((resolve) => child.once('exit', resolve))
  return cpu / expected
}

/** ms from a socket's creation to its `count`-th message after the authentication message. */
function timeToMessages (url: string, count: number): Promise<number> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    let seen = -1
    ws.on('message', () => {
      if (++seen === count) {
        resolve(performance.now() - started)
        ws.terminate()
      }
    })
    ws.once('error', reject)
  })
}

async function replayTimes (redisUrl: string | undefined): Promise<{ replay: number, fresh: number }> {
  // A prefix of its own: the broadcast variants' history of 'room' is in the same Redis.
  const redis = redisUrl === undefined ? {} : { redis: { url: redisUrl, prefix: `replay${Math.random().toString(36).slice(2)}:` } }
  const { app, port } = await buildApp({ heartbeatInterval: 0, history: true, ...redis })
  for (let i = 0; i < REPLAYED; i++) await app.chanx.broadcast('room', { action: 'tick', payload: { text: 'a kept message', n: i } })
  // A fresh connection learns the epoch; a resume from offset 0 of it misses all 1,000.
  const epoch = await new Promise<string>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
    ws.once('message', (data) => { resolve(JSON.parse(String(data)).chanx_recovery.positions.room[1]); ws.terminate() })
  })
  const token = newRecoveryToken(null)
  const resume = Buffer.from(JSON.stringify({ t: token, g: { room: [0, epoch] } })).toString('base64url')
  const replay = await timeToMessages(`ws://127.0.0.1:${port}/ws?chanx_recover=${resume}`, REPLAYED)
  // Baseline: a fresh connection, then 1,000 live broadcasts reach it.
  const url = `ws://127.0.0.1:${port}/ws`
  const fresh = await new Promise<number>((resolve) => {
    const ws = new WebSocket(url)
    let started = 0
    let seen = -1
    ws.on('message', async () => {
      if (++seen === 0) {
        started = performance.now()
        for (let i = 0; i < REPLAYED; i++) void app.chanx.broadcast('room', { action: 'tick', payload: { text: 'a live message', n: i } })
      } else if (seen === REPLAYED) {
        resolve(performance.now() - started)
        ws.terminate()
      }
    })
  })
  await app.close()
  return { replay, fresh }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

async function main (): Promise<void> {
  const noRedis = redisSkipReason()
  const redis = noRedis === false ? await RedisServer.start() : null
  const variants: Variant[] = redis === null ? ['memory-off', 'memory-on'] : ['memory-off', 'memory-on', 'redis-off', 'redis-on']
  const cpu = new Map<Variant, number[]>(variants.map((v) => [v, []]))
  const replays: Record<string, number[]> = { memory: [], memoryFresh: [], redis: [], redisFresh: [] }
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of variants) cpu.get(variant)!.push(await cpuPerDelivery(variant, redis?.url))
    const memory = await replayTimes(undefined)
    replays.memory!.push(memory.replay)
    replays.memoryFresh!.push(memory.fresh)
    if (redis !== null) {
      const over = await replayTimes(redis.url)
      replays.redis!.push(over.replay)
      replays.redisFresh!.push(over.fresh)
    }
    console.log(`round ${round + 1}/${ROUNDS} done`)
  }
  const ratio = (on: Variant, off: Variant): number => median(cpu.get(on)!.map((value, i) => value / cpu.get(off)![i]!))
  console.log(`bench history: clients=${CLIENTS} broadcasts=${BROADCASTS} rounds=${ROUNDS}`)
  console.log(`bench history memory: off=${median(cpu.get('memory-off')!).toFixed(2)} us/delivery on=${median(cpu.get('memory-on')!).toFixed(2)} ratio=${ratio('memory-on', 'memory-off').toFixed(3)}`)
  if (redis !== null) {
    console.log(`bench history redis: off=${median(cpu.get('redis-off')!).toFixed(2)} us/delivery on=${median(cpu.get('redis-on')!).toFixed(2)} ratio=${ratio('redis-on', 'redis-off').toFixed(3)}`)
  }
  console.log(`bench replay memory: ${REPLAYED} messages in ${median(replays.memory!).toFixed(1)} ms (1,000 live broadcasts to a fresh socket: ${median(replays.memoryFresh!).toFixed(1)} ms)`)
  if (redis !== null) {
    console.log(`bench replay redis: ${REPLAYED} messages in ${median(replays.redis!).toFixed(1)} ms (1,000 live broadcasts to a fresh socket: ${median(replays.redisFresh!).toFixed(1)} ms)`)
  }
  let resumes: { cost: ResumeCost, attack: AttackWindow[] } | null = null
  if (redis !== null) {
    const cost = await resumeCost(redis.url)
    console.log(formatCost(cost).join('\n'))
    const attack = await resumeAttack(redis.url, cost.replayed)
    console.log(formatAttack(attack).join('\n'))
    resumes = { cost, attack }
  }
  await redis?.stop()
  const defaults = ['BENCH_ROUNDS', 'BENCH_CLIENTS', 'BENCH_BROADCASTS'].every((name) => process.env[name] === undefined)
  if (process.env.BENCH_WRITE === '1' || (process.env.BENCH_WRITE !== '0' && defaults)) {
    writeSection(cpu, replays, ratio, resumes)
  }
}

const SECTION = sectionMarks('history')
const TARGET = 1.15

/** Rewrites the history section of bench/RESULTS.md (appended when missing); bench/run.ts carries it over. */
function writeSection (cpu: Map<Variant, number[]>, replays: Record<string, number[]>,
  ratio: (on: Variant, off: Variant) => number, resumes: { cost: ResumeCost, attack: AttackWindow[] } | null): void {
  const withRedis = resumes !== null
  const file = path.join(__dirname, 'RESULTS.md')
  const f = (x: number): string => x.toFixed(2)
  const rows = ['| layer | history off | history on | on / off | target | met |', '|---|---:|---:|---:|---:|---|']
  for (const layer of withRedis ? ['memory', 'redis'] as const : ['memory'] as const) {
    const r = ratio(`${layer}-on`, `${layer}-off`)
    rows.push(`| ${layer === 'memory' ? 'in process' : 'over Redis'} | ${f(median(cpu.get(`${layer}-off`)!))} | ${f(median(cpu.get(`${layer}-on`)!))} | ${r.toFixed(3)} | ≤ ${TARGET} | ${r <= TARGET ? 'yes' : 'no'} |`)
  }
  const replayRows = ['| layer | replay of 1,000 missed messages | 1,000 live broadcasts to a fresh socket |', '|---|---:|---:|',
    `| in process | ${median(replays.memory!).toFixed(1)} ms | ${median(replays.memoryFresh!).toFixed(1)} ms |`]
  if (withRedis) replayRows.push(`| over Redis | ${median(replays.redis!).toFixed(1)} ms | ${median(replays.redisFresh!).toFixed(1)} ms |`)
  const section = [SECTION.start, '', '## Recoverable history (issue 17)', '',
    `Generated by \`node --import tsx bench/history.ts\` on ${new Date().toISOString()} (${os.cpus().length} cores, Node.js ${process.version}, ` +
    `load average ${os.loadavg()[0]!.toFixed(1)} at the end); ${CLIENTS} clients in one group, ${BROADCASTS} broadcasts per variant, ${ROUNDS} rounds, ` +
    'medians of per-round ratios. Method and limits: [docs/recovery.md](../docs/recovery.md#cost).', '',
    'Broadcast CPU per delivery (µs, server process):', '', ...rows, '',
    'Time from the socket\'s creation to its last message (median):', '', ...replayRows, '',
    ...(resumes === null
      ? []
      : ['What one resume costs over Redis (mean of sequential handshakes; the app\'s CPU in its own process):', '', ...formatCost(resumes.cost), '',
          `One account resuming in a loop (${ATTACK_SETTINGS}):`, '', ...formatAttack(resumes.attack), '']),
    SECTION.end].join('\n')
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n'
  const next = withSection(text, 'history', section)
  writeFileSync(file, next)
  console.log(`wrote the history section of ${file}`)
}

if (process.argv[2] === 'server') {
  serve(process.argv[3] as Variant).catch((err) => { console.error(err); process.exit(1) })
} else {
  main().catch((err) => { console.error(err); process.exit(1) })
}
