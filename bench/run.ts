/**
 * The benchmark suite: server CPU microseconds per operation at a fixed offered load, plugin against the
 * stacks users would write instead, each variant a fresh server process.
 *
 *     node --import tsx bench/run.ts                  # full run (3 s warm-up, 10 s window, 5 rounds), writes bench/RESULTS.md
 *     BENCH_QUICK=1 node --import tsx bench/run.ts    # 0.5 s warm-up, 1 s window, 2 rounds, writes nothing
 *     BENCH_SCENARIOS=handshake,messages,memory,broadcast   # a subset
 *     BENCH_ROUNDS=7 BENCH_WARMUP=3 BENCH_WINDOW=10   # seconds; override either mode
 *     BENCH_PROF=1                                     # plugin servers run with --cpu-prof into bench/profiles/ ('all': every server)
 *     BENCH_MESSAGE_LOADS=full,4k,half                 # which message loads run
 *
 * Servers run pinned to core 0 (`taskset -c 0`); this harness (the load generator) re-executes itself pinned
 * to core 1, and redis-server, started from here, inherits that. Both raise `ulimit -n` for the memory
 * scenario's 20,000 sockets. The method is described in docs/benchmarks.md.
 *
 * Each scenario prints `bench <scenario>: plugin=<x> baseline=<y> ratio=<plugin/baseline>`: medians over
 * the rounds of each side, and the median of the per-round ratios. Lower is better for every figure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createSigner } from 'fast-jwt'
import { closeClients, handshakeLoad, messageLoad, now, openClients, receiveBroadcasts, type LoadResult, type Window } from './clients'
import { COOKIE, SECRET } from './common'
import { RedisServer } from '../test/helpers/redis'

const ROOT = path.resolve(__dirname, '..')
const FD_LIMIT = 65536

const QUICK = process.env.BENCH_QUICK === '1'
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 2 : 5))
const WARMUP = Number(process.env.BENCH_WARMUP ?? (QUICK ? 0.5 : 3)) * 1000
const WINDOW = Number(process.env.BENCH_WINDOW ?? (QUICK ? 1 : 10)) * 1000
/** '1': profile the plugin servers; 'all': every server. */
const PROF = process.env.BENCH_PROF ?? ''
const SCENARIOS = new Set((process.env.BENCH_SCENARIOS ?? 'handshake,messages,memory,broadcast').split(','))
/** Offered loads; the defaults are what one core of this harness can offer (see docs/benchmarks.md). */
const HANDSHAKE_RATE = Number(process.env.BENCH_HANDSHAKE_RATE ?? 400)
const MESSAGE_RATE = Number(process.env.BENCH_MESSAGE_RATE ?? 30000)
const MESSAGE_4K_RATE = Number(process.env.BENCH_MESSAGE_4K_RATE ?? 5000)
const CONNECTIONS = 100
/** The hard fd limit caps one process's sockets: the larger count becomes what fits under it (see the notes). */
const HARD_FDS = Number(spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim()) || FD_LIMIT
const MEMORY_COUNTS = (process.env.BENCH_MEMORY_COUNTS ?? '10000,20000').split(',').map((n) => Math.min(Number(n), HARD_FDS - 100))
const MEMORY_ROUNDS = Number(process.env.BENCH_MEMORY_ROUNDS ?? Math.min(ROUNDS, 3))
const BROADCAST_SIZES = (process.env.BENCH_BROADCAST_SIZES ?? '100,1000,5000').split(',').map(Number)
/** Deliveries per second offered in the broadcast scenario: broadcasts/s = this / group size. */
const BROADCAST_DELIVERIES = Number(process.env.BENCH_BROADCAST_DELIVERIES ?? 50000)

const sign = createSigner({ key: SECRET, expiresIn: 3600_000 })
const GOOD_COOKIE = `${COOKIE}=${sign({ sub: 'alice' }) as string}`
const BAD_COOKIE = `${COOKIE}=${createSigner({ key: 'another-secret-of-at-least-32-characters!!' })({ sub: 'alice' }) as string}`

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------------------
// Server processes

interface Server {
  port: number
  request<T>(cmd: Record<string, unknown>, reply: string): Promise<T>
  send(cmd: Record<string, unknown>): void
  exit(): Promise<void>
}

interface Cpu { user: number, system: number }
interface Mem { rss: number, heapUsed: number, external: number, arrayBuffers: number, sampled: number, aliveRequests: number, aliveRaw: number }

let profiles = 0
async function startServer (variant: string, env: Record<string, string> = {}): Promise<Server> {
  const prof = PROF === 'all' || (PROF === '1' && variant.includes('plugin'))
    ? `--cpu-prof --cpu-prof-dir=bench/profiles/${variant}-${process.pid}-${++profiles} `
    : ''
  const child: ChildProcess = spawn('sh', ['-c', `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n $(ulimit -Hn); exec taskset -c 0 node --expose-gc ${prof}--import tsx bench/server.ts`], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env, BENCH_VARIANT: variant, NODE_ENV: 'production' }
  })
  const waiting = new Map<string, (msg: unknown) => void>()
  child.on('message', (msg: { type: string }) => {
    const resolve = waiting.get(msg.type)
    waiting.delete(msg.type)
    resolve?.(msg)
  })
  const port = await new Promise<number>((resolve, reject) => {
    waiting.set('ready', (msg) => resolve((msg as { port: number }).port))
    child.once('exit', (code) => reject(new Error(`server ${variant} exited with ${code}`)))
  })
  return {
    port,
    request<T>(cmd: Record<string, unknown>, reply: string): Promise<T> {
      return new Promise((resolve) => { waiting.set(reply, resolve as (msg: unknown) => void); child.send(cmd) })
    },
    send (cmd) { child.send(cmd) },
    exit () {
      return new Promise((resolve) => {
        if (child.exitCode !== null) { resolve(); return }
        child.once('exit', () => resolve())
        child.send({ cmd: 'exit' })
      })
    }
  }
}

/** The measurement window: opens after the warm-up; the server's CPU is read at both edges. */
function openWindow (server: Server): { window: Window, cpu: Promise<number> } {
  const start = now() + WARMUP
  const window = { start, end: start + WINDOW }
  const at = (t: number): Promise<Cpu> => sleep(t - now()).then(() => server.request<Cpu>({ cmd: 'cpu' }, 'cpu'))
  const cpu = Promise.all([at(window.start), at(window.end)]).then(([a, b]) => (b.user + b.system) - (a.user + a.system))
  return { window, cpu }
}

// ---------------------------------------------------------------------------------------------------------
// Statistics: percentiles from the sorted sample (every operation of the window is kept).

function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!
}

function median (values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  return v.length % 2 === 1 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2
}

function shuffle<T> (items: T[]): T[] {
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}

interface Run {
  /** Server CPU µs per operation (or bytes per connection in the memory scenario). */
  value: number
  offered: number
  achieved: number
  failed: number
  p50: number
  p99: number
  p999: number
  extra?: Record<string, number>
}

function summarize (cpuUs: number, load: LoadResult, offered: number): Run {
  const sorted = load.latencies.sort((a, b) => a - b)
  return {
    value: load.completed > 0 ? cpuUs / load.completed : NaN,
    offered,
    achieved: load.completed / (WINDOW / 1000),
    failed: load.failed,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999)
  }
}

// ---------------------------------------------------------------------------------------------------------
// Results

/** variant -> one Run per round */
type Rounds = Map<string, Run[]>

interface Line { scenario: string, plugin: number, baseline: number, ratio: number, unit: string, target?: number }
const lines: Line[] = []
const details: { scenario: string, variant: string, runs: Run[], unit: string }[] = []
const notes: string[] = []
function note (text: string): void { notes.push(text); console.log(`# note: ${text}`) }

function record (rounds: Rounds, name: string, variant: string, runs: Run): void {
  const list = rounds.get(variant) ?? []
  list.push(runs)
  rounds.set(variant, list)
  const fmt = (x: number): string => Number.isFinite(x) ? x.toFixed(2) : '-'
  console.log(`#   ${name} ${variant}: ${fmt(runs.value)} offered=${Math.round(runs.offered)}/s achieved=${Math.round(runs.achieved)}/s failed=${runs.failed} ` +
    `p50=${fmt(runs.p50)} p99=${fmt(runs.p99)} p99.9=${fmt(runs.p999)} ms${runs.extra !== undefined ? ' ' + JSON.stringify(runs.extra) : ''}`)
}

/** One `bench` line: medians of each side, and the median of the ratios taken within each round. */
function compare (rounds: Rounds, scenario: string, plugin: string, baseline: string, unit: string, target?: number, pick: (r: Run) => number = (r) => r.value): void {
  const p = rounds.get(plugin) ?? []
  const b = rounds.get(baseline) ?? []
  const ratios = p.map((run, i) => b[i] !== undefined ? pick(run) / pick(b[i]) : NaN)
  const line = { scenario, plugin: median(p.map(pick)), baseline: median(b.map(pick)), ratio: median(ratios), unit, target }
  lines.push(line)
  console.log(`bench ${scenario}: plugin=${line.plugin.toFixed(2)} baseline=${line.baseline.toFixed(2)} ratio=${line.ratio.toFixed(3)}`)
}

function keepDetails (scenario: string, rounds: Rounds, unit: string): void {
  for (const [variant, runs] of rounds) details.push({ scenario, variant, runs, unit })
}

function writeResults (): void {
  if (QUICK || process.env.BENCH_WRITE === '0') return
  const cpus = os.cpus()
  const f = (x: number, d = 2): string => Number.isFinite(x) ? x.toFixed(d) : '-'
  const out: string[] = []
  out.push('# Benchmark results', '')
  out.push(`Generated by \`npm run bench\` (\`node --import tsx bench/run.ts\`) on ${new Date().toISOString()}. Method: [docs/benchmarks.md](../docs/benchmarks.md).`, '')
  out.push(`- Machine: ${cpus.length} cores (${cpus[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, ${os.type()} ${os.release()}`)
  out.push(`- Node.js ${process.version}; server on core 0, load generator and redis-server on core 1`)
  out.push(`- ${WARMUP / 1000} s warm-up, ${WINDOW / 1000} s window, ${ROUNDS} rounds in random order (memory: ${MEMORY_ROUNDS} rounds); ratios taken within a round, median reported`)
  out.push('- **Lower is better** for every figure: CPU µs per operation, bytes per connection, milliseconds of latency; ratio = plugin / baseline', '')
  out.push('| scenario | plugin | baseline | ratio | unit | target | met |', '|---|---:|---:|---:|---|---:|---|')
  for (const l of lines) {
    const met = l.target === undefined ? 'report' : (l.ratio <= l.target ? 'yes' : 'no')
    out.push(`| ${l.scenario} | ${f(l.plugin)} | ${f(l.baseline)} | ${f(l.ratio, 3)} | ${l.unit} | ${l.target === undefined ? '-' : '≤ ' + Number(l.target.toFixed(2))} | ${met} |`)
  }
  out.push('', '## Every variant (median over rounds)', '')
  out.push('| scenario | variant | value | unit | offered/s | achieved/s | failed | p50 ms | p99 ms | p99.9 ms |', '|---|---|---:|---|---:|---:|---:|---:|---:|---:|')
  for (const d of details) {
    const m = (pick: (r: Run) => number): number => median(d.runs.map(pick))
    out.push(`| ${d.scenario} | ${d.variant} | ${f(m((r) => r.value))} | ${d.unit} | ${f(m((r) => r.offered), 0)} | ${f(m((r) => r.achieved), 0)} | ${f(m((r) => r.failed), 0)} | ${f(m((r) => r.p50), 3)} | ${f(m((r) => r.p99), 3)} | ${f(m((r) => r.p999), 3)} |`)
  }
  if (notes.length > 0) out.push('', '## Notes', '', ...notes.map((n) => `- ${n}`))
  writeFileSync(path.join(ROOT, 'bench', 'RESULTS.md'), out.join('\n') + '\n')
}

// ---------------------------------------------------------------------------------------------------------
// 1. Authenticated handshake

async function handshakes (): Promise<void> {
  const variants = [
    { name: 'plugin', server: 'handshake-plugin', cookie: GOOD_COOKIE, expect: '"status_code":200' },
    { name: 'plugin-rejected', server: 'handshake-plugin', cookie: BAD_COOKIE, expect: '"status_code":401' },
    { name: 'fastify-ws', server: 'handshake-fastify-ws', cookie: GOOD_COOKIE, expect: '"status_code":200' },
    { name: 'fastify-ws-rejected', server: 'handshake-fastify-ws', cookie: BAD_COOKIE, expect: '"status_code":401' },
    { name: 'ws', server: 'handshake-ws', cookie: GOOD_COOKIE, expect: '"status_code":200' },
    { name: 'ws-rejected', server: 'handshake-ws', cookie: BAD_COOKIE, expect: '"status_code":401' }
  ]
  const rounds: Rounds = new Map()
  for (let round = 0; round < ROUNDS; round++) {
    for (const v of shuffle(variants)) {
      const server = await startServer(v.server)
      const { window, cpu } = openWindow(server)
      const load = await handshakeLoad({ port: server.port, path: '/ws/rooms/lobby', cookie: v.cookie, expect: v.expect, rate: HANDSHAKE_RATE, window, maxInFlight: 2000 })
      record(rounds, 'handshake', v.name, summarize(await cpu, load, HANDSHAKE_RATE))
      await server.exit()
    }
  }
  compare(rounds, 'handshake', 'plugin', 'fastify-ws', 'CPU µs/handshake', 1.05)
  compare(rounds, 'handshake-vs-ws', 'plugin', 'ws', 'CPU µs/handshake')
  compare(rounds, 'handshake-rejected', 'plugin-rejected', 'fastify-ws-rejected', 'CPU µs/handshake', 1.05)
  compare(rounds, 'handshake-rejected-vs-ws', 'plugin-rejected', 'ws-rejected', 'CPU µs/handshake')
  compare(rounds, 'handshake-p99', 'plugin', 'fastify-ws', 'ms p99', undefined, (r) => r.p99)
  keepDetails('handshake', rounds, 'CPU µs/handshake')
}

// ---------------------------------------------------------------------------------------------------------
// 2. Validated, routed message round trip

async function messages (): Promise<void> {
  const small = (n: number | string): string => JSON.stringify({ action: 'echo', payload: { text: 'hello, chanx', n } })
  const large = (n: number | string): string => JSON.stringify({ action: 'echo', payload: { text: 'x'.repeat(4096), n } })
  const loads = [
    { load: 'full', rate: MESSAGE_RATE, valid: small(42), invalid: small('42') },
    { load: '4k', rate: MESSAGE_4K_RATE, valid: large(42), invalid: large('42') },
    { load: 'half', rate: MESSAGE_RATE / 2, valid: small(42), invalid: small('42') }
  ]
  const servers = [
    { name: 'plugin', server: 'messages-plugin' },
    { name: 'fastify-ws', server: 'messages-fastify-ws' },
    { name: 'ws', server: 'messages-ws' }
  ]
  const only = process.env.BENCH_MESSAGE_LOADS?.split(',')
  const variants = loads.filter((l) => only === undefined || only.includes(l.load)).flatMap((l) => servers.map((s) => ({ ...l, ...s, key: `${s.name}@${l.load}` })))
  const rounds: Rounds = new Map()
  for (let round = 0; round < ROUNDS; round++) {
    for (const v of shuffle(variants)) {
      const server = await startServer(v.server)
      const clients = await openClients(`ws://127.0.0.1:${server.port}/echo`, CONNECTIONS)
      const { window, cpu } = openWindow(server)
      const load = await messageLoad({ clients, valid: v.valid, invalid: v.invalid, invalidEvery: 10, rate: v.rate, window })
      record(rounds, 'messages', v.key, summarize(await cpu, load, v.rate))
      await closeClients(clients)
      await server.exit()
    }
  }
  compare(rounds, `messages (${MESSAGE_RATE}/s, 10% invalid)`, 'plugin@full', 'fastify-ws@full', 'CPU µs/round trip', 1.05)
  compare(rounds, 'messages-vs-ws', 'plugin@full', 'ws@full', 'CPU µs/round trip')
  compare(rounds, `messages-4k (${MESSAGE_4K_RATE}/s)`, 'plugin@4k', 'fastify-ws@4k', 'CPU µs/round trip', 1.05)
  compare(rounds, 'messages-4k-vs-ws', 'plugin@4k', 'ws@4k', 'CPU µs/round trip')
  compare(rounds, `messages-p99-half-load (${MESSAGE_RATE / 2}/s)`, 'plugin@half', 'ws@half', 'ms p99', 1.3, (r) => r.p99)
  compare(rounds, 'messages-p99-half-load-vs-fastify-ws', 'plugin@half', 'fastify-ws@half', 'ms p99', undefined, (r) => r.p99)
  keepDetails('messages', rounds, 'CPU µs/round trip')
}

// ---------------------------------------------------------------------------------------------------------
// 3. Memory per idle authenticated connection

/** `count` idle authenticated connections, held by child processes of at most 10,000 each (fd limit). */
async function idleClients (url: string, count: number): Promise<{ close(): Promise<void> }> {
  const parts = Math.ceil(count / 10000)
  const children: ChildProcess[] = []
  const close = async (): Promise<void> => {
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null) { resolve(); return }
      child.once('exit', () => resolve())
      child.send({ cmd: 'close' })
    })))
  }
  try {
    await Promise.all(Array.from({ length: parts }, (_, i) => new Promise<void>((resolve, reject) => {
      const n = Math.floor(count / parts) + (i < count % parts ? 1 : 0)
      const child = spawn('taskset', ['-c', '1', 'node', '--import', 'tsx', 'bench/idle-clients.ts', url, String(n), GOOD_COOKIE], {
        cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc']
      })
      children.push(child)
      child.once('message', (msg: { type: string, message?: string }) => {
        if (msg.type === 'open') resolve()
        else reject(new Error(msg.message))
      })
      child.once('exit', (code) => reject(new Error(`idle clients exited with ${code}`)))
    })))
  } catch (err) {
    for (const child of children) child.kill('SIGKILL')
    throw err
  }
  return { close }
}

async function memory (): Promise<void> {
  if (MEMORY_COUNTS.some((n, i) => n < Number((process.env.BENCH_MEMORY_COUNTS ?? '10000,20000').split(',')[i]))) {
    note(`the hard fd limit is ${HARD_FDS} and cannot be raised here, so the server holds at most ${HARD_FDS - 100} sockets: ` +
      `counts were capped to ${MEMORY_COUNTS.join(', ')}`)
  }
  const variants = [
    { name: 'plugin', server: 'handshake-plugin' },
    { name: 'bare-fastify-ws', server: 'bare-fastify-ws' },
    { name: 'fastify-ws-jwt', server: 'handshake-fastify-ws' }
  ]
  for (const count of MEMORY_COUNTS) {
    const rounds: Rounds = new Map()
    const heap: Rounds = new Map()
    for (let round = 0; round < MEMORY_ROUNDS; round++) {
      for (const v of shuffle(variants)) {
        const server = await startServer(v.server)
        const before = await server.request<Mem>({ cmd: 'mem' }, 'mem')
        let clients
        try {
          clients = await idleClients(`ws://127.0.0.1:${server.port}/ws/rooms/lobby`, count)
        } catch (err) {
          note(`memory ${count} ${v.name}: could not open ${count} connections: ${(err as Error).message}`)
          await server.exit()
          continue
        }
        await sleep(1000)
        const after = await server.request<Mem>({ cmd: 'mem' }, 'mem')
        const base = { offered: count, achieved: count, failed: 0, p50: NaN, p99: NaN, p999: NaN }
        const extra = { sampled: after.sampled, aliveRequests: after.aliveRequests, aliveRaw: after.aliveRaw, rssMiB: Math.round(after.rss / 2 ** 20) }
        record(rounds, `memory-${count} rss`, v.name, { ...base, value: (after.rss - before.rss) / count, extra })
        record(heap, `memory-${count} heap`, v.name, { ...base, value: (after.heapUsed - before.heapUsed) / count })
        if (process.env.BENCH_HEAP === '1') await server.request({ cmd: 'snapshot' }, 'snapshot')
        note(`memory ${count} ${v.name} round ${round + 1}: of ${after.sampled} sampled upgrade requests (1 in 50), ` +
          `${after.aliveRequests} Fastify requests and ${after.aliveRaw} IncomingMessages still alive after forced GC, sockets open`)
        await clients.close()
        await sleep(500)
        const closed = await server.request<Mem>({ cmd: 'mem' }, 'mem')
        note(`memory ${count} ${v.name} round ${round + 1}: after the clients closed, ${closed.aliveRequests} Fastify requests and ${closed.aliveRaw} IncomingMessages of ${closed.sampled} sampled still alive`)
        await server.exit()
      }
    }
    compare(rounds, `memory-${count} rss`, 'plugin', 'bare-fastify-ws', 'bytes/connection', 1.10)
    compare(heap, `memory-${count} heap`, 'plugin', 'bare-fastify-ws', 'bytes/connection', 1.10)
    compare(rounds, `memory-${count} rss-vs-fastify-ws-jwt`, 'plugin', 'fastify-ws-jwt', 'bytes/connection')
    keepDetails(`memory-${count} rss`, rounds, 'bytes/connection')
    keepDetails(`memory-${count} heap`, heap, 'bytes/connection')
  }
}

// ---------------------------------------------------------------------------------------------------------
// 4. Broadcast

async function broadcasts (): Promise<void> {
  const redisSkip = spawnSync('redis-server', ['--version']).status === 0 ? null : 'redis-server not found'
  const redis = redisSkip === null ? await RedisServer.start() : null
  if (redisSkip !== null) note(`broadcast over Redis skipped: ${redisSkip}`)
  const servers = [
    { name: 'plugin', server: 'broadcast-plugin', path: '/feed' },
    { name: 'ws-naive-loop', server: 'broadcast-ws', path: '/' },
    ...(redis !== null ? [{ name: 'plugin-redis', server: 'broadcast-plugin-redis', path: '/feed' }] : [])
  ]
  try {
    for (const size of BROADCAST_SIZES) {
      const rate = BROADCAST_DELIVERIES / size
      const rounds: Rounds = new Map()
      for (let round = 0; round < ROUNDS; round++) {
        for (const v of shuffle(servers)) {
          const server = await startServer(v.server, redis !== null ? { BENCH_REDIS_URL: redis.url } : {})
          const clients = await openClients(`ws://127.0.0.1:${server.port}${v.path}`, size, { batch: 500 })
          await sleep(200)
          const { window, cpu } = openWindow(server)
          const load = receiveBroadcasts(clients, window, Math.max(1, Math.floor(size / 100)))
          server.send({ cmd: 'broadcast', rate })
          await sleep(window.end - now() + 50)
          const run = summarize(await cpu, load, rate * size)
          record(rounds, `broadcast-${size}`, v.name, run)
          await closeClients(clients)
          await server.exit()
        }
      }
      compare(rounds, `broadcast-${size}`, 'plugin', 'ws-naive-loop', 'CPU µs/delivered message', 0.90)
      if (redis !== null) {
        compare(rounds, `broadcast-${size}-redis`, 'plugin-redis', 'plugin', 'CPU µs/delivered message', 1.15)
        const p = median(rounds.get('plugin-redis')!.map((r) => r.p50))
        const b = median(rounds.get('plugin')!.map((r) => r.p50))
        const extra = median(rounds.get('plugin-redis')!.map((r, i) => r.p50 - rounds.get('plugin')![i]!.p50))
        lines.push({ scenario: `broadcast-${size}-redis extra median latency (ms, target ≤ 2)`, plugin: p, baseline: b, ratio: p / b, unit: 'ms p50', target: b > 0 ? (b + 2) / b : undefined })
        console.log(`bench broadcast-${size}-redis-latency: plugin=${p.toFixed(3)} baseline=${b.toFixed(3)} ratio=${(p / b).toFixed(3)} extra=${extra.toFixed(3)}ms`)
      }
      keepDetails(`broadcast-${size}`, rounds, 'CPU µs/delivered message')
    }
  } finally {
    await redis?.stop()
  }
}

async function main (): Promise<void> {
  console.log(`# fastify-chanx benchmarks: ${os.cpus().length} cores, Node ${process.version}, warm-up ${WARMUP} ms, window ${WINDOW} ms, ${ROUNDS} rounds${QUICK ? ' (BENCH_QUICK)' : ''}`)
  console.log('# lower is better: CPU µs per operation, bytes per connection, ms of latency; ratio = plugin / baseline')
  if (SCENARIOS.has('handshake')) { await handshakes(); writeResults() }
  if (SCENARIOS.has('messages')) { await messages(); writeResults() }
  if (SCENARIOS.has('memory')) { await memory(); writeResults() }
  if (SCENARIOS.has('broadcast')) { await broadcasts(); writeResults() }
}

if (process.env.BENCH_PINNED === undefined) {
  // Re-run this file pinned to core 1 with a raised fd limit (root, or a hard limit high enough, needed).
  const child = spawn('sh', ['-c', `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n $(ulimit -Hn); exec taskset -c 1 node --import tsx bench/run.ts`], {
    cwd: ROOT, stdio: 'inherit', env: { ...process.env, BENCH_PINNED: '1' }
  })
  child.on('exit', (code) => { process.exitCode = code ?? 1 })
} else {
  main().catch((err: unknown) => { console.error(err); process.exit(1) })
}
