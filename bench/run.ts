/**
 * The benchmark suite: server CPU microseconds per operation at a fixed offered load, plugin against the
 * stacks users would write instead, each variant a fresh server process.
 *
 *     npm run bench         # node --import tsx bench/run.ts: full run (3 s warm-up, 10 s window, 5 rounds), writes bench/RESULTS.md
 *     npm run bench:quick   # BENCH_QUICK=1: the same lines in a few minutes (see QUICK below), writes nothing
 *     BENCH_SCENARIOS=handshake,messages,memory,broadcast   # a subset (writes nothing unless BENCH_WRITE=1)
 *     BENCH_ROUNDS=7 BENCH_WARMUP=3 BENCH_WINDOW=10   # seconds; override either mode
 *     BENCH_PROF=1                                     # plugin servers run with --cpu-prof into bench/profiles/ ('all': every server)
 *     BENCH_REDIS_FLOOR=100,1000                       # broadcast sizes that also run the Redis trip alone (default 100; 'none')
 *     BENCH_MESSAGE_LOADS=full,4k,half                 # which message loads run
 *     BENCH_MEMORY_WARMUP=500                          # connections opened and closed before the memory scenario's first reading
 *     BENCH_BASELINES=socketio,uws                     # the optional baselines (default both; 'none' for neither)
 *     BENCH_STRICT=1                                   # exit 1 when a target is not met
 *     BENCH_PLUGIN=source                              # servers load plugin/ through tsx instead of the build (dist/, made first)
 *
 * Servers run pinned to core 0 (`taskset -c 0`); this harness (the load generator) re-executes itself pinned
 * to core 1, and redis-server, started from here, inherits that. Both raise `ulimit -n` for the memory
 * scenario's 20,000 sockets. The method is described in docs/benchmarks.md.
 *
 * Each scenario prints `bench <scenario>: plugin=<x> baseline=<y> ratio=<plugin/baseline>`: medians over
 * the rounds of each side, and the median of the per-round ratios, with `target ≤ t met|NOT MET` where the
 * issue sets a target; the run ends with the list of targets. Lower is better for every figure.
 *
 * Baselines measured in the same run: the same checks written by hand on @fastify/websocket and on raw `ws`,
 * Socket.IO 4 (websocket transport only), and uWebSockets.js as a reported-only "limit" where its binary
 * loads (skipped with the reason where it does not).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createSigner } from 'fast-jwt'
import { io as socketIoClient } from 'socket.io-client'
import { closeClients, handshakeLoad, messageLoad, now, openClients, receiveBroadcasts, type LoadResult, type Window } from './clients'
import { COOKIE, SECRET, SOCKET_IO_CONNECT, SOCKET_IO_PATH, findSection, loadUws } from './common'
import { RedisServer } from '../test/helpers/redis'

const ROOT = path.resolve(__dirname, '..')
const FD_LIMIT = 65536

/**
 * Quick: 0.5 s warm-up, 1 s window, 1 round, memory at 1,000 and 2,000 connections; every line of the full
 * run, in a few minutes; writes nothing.
 */
const QUICK = process.env.BENCH_QUICK === '1'
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 5))
const WARMUP = Number(process.env.BENCH_WARMUP ?? (QUICK ? 0.5 : 3)) * 1000
const WINDOW = Number(process.env.BENCH_WINDOW ?? (QUICK ? 1 : 10)) * 1000
/** '1': profile the plugin servers; 'all': every server. */
const PROF = process.env.BENCH_PROF ?? ''
/**
 * The group sizes that add the broadcast-plugin-redis-floor variant: the in-process plugin behind a bare
 * ioredis PUBLISH/message trip. By default the size where the Redis target is tightest.
 */
const REDIS_FLOOR_SIZES = new Set((process.env.BENCH_REDIS_FLOOR ?? '100').split(',').map(Number))
const ALL_SCENARIOS = ['handshake', 'messages', 'memory', 'broadcast']
const SCENARIOS = new Set((process.env.BENCH_SCENARIOS ?? ALL_SCENARIOS.join(',')).split(','))
/** Only a full run (every scenario, not quick) rewrites bench/RESULTS.md, unless BENCH_WRITE says otherwise. */
const WRITE = process.env.BENCH_WRITE !== undefined
  ? process.env.BENCH_WRITE === '1'
  : !QUICK && ALL_SCENARIOS.every((s) => SCENARIOS.has(s))
const BASELINES = new Set((process.env.BENCH_BASELINES ?? 'socketio,uws').split(','))
const SOCKET_IO = BASELINES.has('socketio')
/** uWebSockets.js: loaded here only to learn whether the servers can load it. */
const UWS_SKIP: string | null = !BASELINES.has('uws') ? 'not selected (BENCH_BASELINES)' : (loadUws().skip ?? null)
const UWS = UWS_SKIP === null
/** Offered loads; the defaults are what one core of this harness can offer (see docs/benchmarks.md). */
const HANDSHAKE_RATE = Number(process.env.BENCH_HANDSHAKE_RATE ?? 400)
const MESSAGE_RATE = Number(process.env.BENCH_MESSAGE_RATE ?? 30000)
const MESSAGE_4K_RATE = Number(process.env.BENCH_MESSAGE_4K_RATE ?? 5000)
const CONNECTIONS = 100
/** The hard fd limit caps one process's sockets: the larger count becomes what fits under it (see the notes). */
const HARD_FDS = Number(spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim()) || FD_LIMIT
const MEMORY_COUNTS_ASKED = (process.env.BENCH_MEMORY_COUNTS ?? (QUICK ? '1000,2000' : '10000,20000')).split(',').map(Number)
const MEMORY_COUNTS = MEMORY_COUNTS_ASKED.map((n) => Math.min(n, HARD_FDS - 100))
const MEMORY_ROUNDS = Number(process.env.BENCH_MEMORY_ROUNDS ?? (QUICK ? 1 : Math.min(ROUNDS, 3)))
/** Connections each memory server accepts and closes before its first reading (0: none). */
const MEMORY_WARMUP = Number(process.env.BENCH_MEMORY_WARMUP ?? 500)
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

interface Cpu { user: number, system: number, at: number }
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
  // Replies of one type come back in the order asked: a busy server can still owe the window's first CPU
  // reading when the second is asked for.
  const waiting = new Map<string, ((msg: unknown) => void)[]>()
  const wait = (type: string, resolve: (msg: unknown) => void): void => {
    const queue = waiting.get(type) ?? []
    queue.push(resolve)
    waiting.set(type, queue)
  }
  child.on('message', (msg: { type: string }) => { waiting.get(msg.type)?.shift()?.(msg) })
  const port = await new Promise<number>((resolve, reject) => {
    wait('ready', (msg) => resolve((msg as { port: number }).port))
    child.once('exit', (code) => reject(new Error(`server ${variant} exited with ${code}`)))
  })
  return {
    port,
    request<T>(cmd: Record<string, unknown>, reply: string): Promise<T> {
      return new Promise((resolve) => { wait(reply, resolve as (msg: unknown) => void); child.send(cmd) })
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
/**
 * The measurement window: opens after the warm-up; the server's CPU is read at both edges. The server says
 * when it took each reading: where the two are not a window apart (within a quarter of it), the server's
 * event loop was blocked or the machine busy (both readings after the window's end gave 0.01 µs per
 * delivery), so the CPU does not cover the window: the run's figure is NaN (left out of the medians and
 * ratios) and a note says so. Readings shifted alike (a server late at both edges) still span a window.
 */
const MAX_SPAN_ERROR = 0.25
function openWindow (server: Server, label: string): { window: Window, cpu: Promise<number> } {
  const start = now() + WARMUP
  const window = { start, end: start + WINDOW }
  const at = (t: number): Promise<Cpu> => sleep(t - now()).then(() => server.request<Cpu>({ cmd: 'cpu' }, 'cpu'))
  const cpu = Promise.all([at(window.start), at(window.end)]).then(([a, b]) => {
    const span = b.at - a.at
    if (Math.abs(span - WINDOW) > MAX_SPAN_ERROR * WINDOW) {
      note(`${label}: run left out, the server's CPU readings were ${Math.round(span)} ms apart for a ${WINDOW} ms window`)
      return NaN
    }
    return (b.user + b.system) - (a.user + a.system)
  })
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

/**
 * One result row. `figure` is what the target applies to: the median of the per-round ratios, or (kind
 * 'extra') the median of the per-round differences plugin − baseline. `limit`: a reported-only row against
 * uWebSockets.js, the floor of what a Node.js process can do, not a target.
 */
interface Line { scenario: string, plugin: number, baseline: number, figure: number, kind: 'ratio' | 'extra' | 'absolute', unit: string, target?: number, limit?: boolean, skipped?: string }
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

const signed = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`
const met = (l: Line): boolean => Number.isFinite(l.figure) && l.target !== undefined && l.figure <= l.target
function verdict (l: Line): string {
  if (l.skipped !== undefined) return 'skipped'
  if (l.target === undefined) return l.limit === true ? 'limit (report)' : 'report'
  return met(l) ? 'yes' : 'no'
}

function printLine (l: Line): void {
  const head = `bench ${l.scenario}:`
  if (l.skipped !== undefined) { console.log(`${head} skipped (${l.skipped})`); return }
  const figure = l.kind === 'extra' ? `extra=${signed(l.figure)}ms` : l.kind === 'absolute' ? 'ratio=- (absolute figures only)' : `ratio=${l.figure.toFixed(3)}`
  const target = l.target === undefined ? (l.limit === true ? ' (limit, reported only)' : '') : ` target ≤ ${Number(l.target.toFixed(2))} ${met(l) ? 'met' : 'NOT MET'}`
  console.log(`${head} plugin=${l.plugin.toFixed(2)} baseline=${l.baseline.toFixed(2)} ${figure}${target}`)
}

/** One `bench` line: medians of each side, and the median of the ratios taken within each round. */
function compare (rounds: Rounds, scenario: string, plugin: string, baseline: string, unit: string, target?: number, pick: (r: Run) => number = (r) => r.value): Line {
  const p = rounds.get(plugin) ?? []
  const b = rounds.get(baseline) ?? []
  if (p.length === 0 || b.length === 0) {
    const line: Line = { scenario, plugin: NaN, baseline: NaN, figure: NaN, kind: 'ratio', unit, target, skipped: `${p.length === 0 ? plugin : baseline} did not run (BENCH_MESSAGE_LOADS or a failed start)` }
    lines.push(line)
    printLine(line)
    return line
  }
  const ratios = p.map((run, i) => b[i] !== undefined ? pick(run) / pick(b[i]) : NaN)
  const line: Line = { scenario, plugin: median(p.map(pick)), baseline: median(b.map(pick)), figure: median(ratios), kind: 'ratio', unit, target }
  if (!Number.isFinite(line.figure)) line.skipped = 'no round with both runs measured (see the notes)'
  lines.push(line)
  printLine(line)
  return line
}

/**
 * A reported-only line against uWebSockets.js, or the reason it was skipped. `absolute`: both sides' figures
 * without a ratio, where uWS's is near zero and a ratio would say nothing (its sockets live outside V8's heap).
 */
function compareLimit (rounds: Rounds, scenario: string, plugin: string, baseline: string, unit: string, absolute = false): void {
  if (!UWS) {
    const line: Line = { scenario, plugin: NaN, baseline: NaN, figure: NaN, kind: 'ratio', unit, limit: true, skipped: UWS_SKIP! }
    lines.push(line)
    printLine(line)
    return
  }
  if (!absolute) {
    compare(rounds, scenario, plugin, baseline, unit).limit = true
    return
  }
  const p = (rounds.get(plugin) ?? []).map((r) => r.value)
  const b = (rounds.get(baseline) ?? []).map((r) => r.value)
  const line: Line = { scenario, plugin: median(p), baseline: median(b), figure: NaN, kind: 'absolute', unit, limit: true }
  if (p.length === 0 || b.length === 0) line.skipped = `${p.length === 0 ? plugin : baseline} did not run`
  lines.push(line)
  printLine(line)
}

/** A Socket.IO line, or the reason it was skipped (BENCH_BASELINES without socketio). */
function compareSocketIo (rounds: Rounds, scenario: string, plugin: string, baseline: string, unit: string, target?: number): void {
  if (!SOCKET_IO) {
    const line: Line = { scenario, plugin: NaN, baseline: NaN, figure: NaN, kind: 'ratio', unit, target, skipped: 'not selected (BENCH_BASELINES)' }
    lines.push(line)
    printLine(line)
    return
  }
  compare(rounds, scenario, plugin, baseline, unit, target)
}

function keepDetails (scenario: string, rounds: Rounds, unit: string): void {
  for (const [variant, runs] of rounds) details.push({ scenario, variant, runs, unit })
}

/** The sections other tools keep in RESULTS.md (the capacity and the history benchmarks): carried over verbatim. */
const KEPT_SECTIONS = ['capacity', 'history']
function keptSections (file: string): string[] {
  if (!existsSync(file)) return []
  const text = readFileSync(file, 'utf8')
  return KEPT_SECTIONS.map((name) => findSection(text, name)).filter((section) => section !== null)
}

function writeResults (): void {
  if (!WRITE) return
  const file = path.join(ROOT, 'bench', 'RESULTS.md')
  const kept = keptSections(file)
  const cpus = os.cpus()
  const f = (x: number, d = 2): string => Number.isFinite(x) ? x.toFixed(d) : '-'
  const out: string[] = []
  out.push('# Benchmark results', '')
  out.push(`Generated by \`npm run bench\` (\`node --import tsx bench/run.ts\`) on ${new Date().toISOString()}. Method: [docs/benchmarks.md](../docs/benchmarks.md).`, '')
  out.push(`- Machine: ${cpus.length} cores (${cpus[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, ${os.type()} ${os.release()}`)
  out.push(`- Node.js ${process.version}; server on core 0, load generator and redis-server on core 1`)
  out.push(`- ${WARMUP / 1000} s warm-up, ${WINDOW / 1000} s window, ${ROUNDS} rounds in random order (memory: ${MEMORY_ROUNDS} rounds); ratios taken within a round, median reported`)
  out.push(`- Baselines in this run: hand-written on @fastify/websocket, raw \`ws\`, ${SOCKET_IO ? `Socket.IO ${packageVersion('socket.io')} (websocket transport only)` : 'no Socket.IO'}, ` +
    `${UWS ? `uWebSockets.js (${packageVersion('@trufflesuite/uws-js-unofficial')}, limit rows only)` : `no uWebSockets.js (${UWS_SKIP})`}`)
  out.push('- **Lower is better** for every figure: CPU µs per operation, bytes per connection, milliseconds of latency; ratio = plugin / baseline', '')
  const targets = lines.filter((l) => l.target !== undefined)
  const unmeasured = targets.filter((l) => l.skipped !== undefined).length
  out.push(`Targets met: **${targets.filter(met).length} of ${targets.length}**${unmeasured > 0 ? ` (${unmeasured} not measured: see the table)` : ''}.`, '')
  out.push('| scenario | plugin | baseline | ratio | unit | target | met |', '|---|---:|---:|---:|---|---:|---|')
  for (const l of lines) {
    const figure = l.kind === 'extra' ? (Number.isFinite(l.figure) ? `${signed(l.figure)} ms` : '-') : l.kind === 'absolute' ? '-' : f(l.figure, 3)
    const target = l.target === undefined ? '-' : (l.kind === 'extra' ? `≤ +${Number(l.target.toFixed(2))} ms` : `≤ ${Number(l.target.toFixed(2))}`)
    out.push(`| ${l.scenario} | ${f(l.plugin)} | ${f(l.baseline)} | ${figure} | ${l.unit} | ${target} | ${verdict(l)}${l.skipped !== undefined ? ': ' + l.skipped : ''} |`)
  }
  out.push('', '## Every variant (median over rounds)', '')
  out.push('| scenario | variant | value | unit | offered/s | achieved/s | failed | p50 ms | p99 ms | p99.9 ms |', '|---|---|---:|---|---:|---:|---:|---:|---:|---:|')
  for (const d of details) {
    const m = (pick: (r: Run) => number): number => median(d.runs.map(pick))
    out.push(`| ${d.scenario} | ${d.variant} | ${f(m((r) => r.value))} | ${d.unit} | ${f(m((r) => r.offered), 0)} | ${f(m((r) => r.achieved), 0)} | ${f(m((r) => r.failed), 0)} | ${f(m((r) => r.p50), 3)} | ${f(m((r) => r.p99), 3)} | ${f(m((r) => r.p999), 3)} |`)
  }
  if (notes.length > 0) out.push('', '## Notes', '', ...notes.map((n) => `- ${n}`))
  for (const section of kept) out.push('', section)
  writeFileSync(file, out.join('\n') + '\n')
}

function packageVersion (name: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return '?'
  }
}

/** The closing list: every target line, met or not. */
function printTargets (): number {
  const targets = lines.filter((l) => l.target !== undefined)
  const skipped = targets.filter((l) => l.skipped !== undefined)
  const missed = targets.filter((l) => l.skipped === undefined && !met(l))
  console.log(`# targets: ${targets.length - missed.length - skipped.length} of ${targets.length} met${skipped.length > 0 ? `, ${skipped.length} skipped` : ''}`)
  for (const l of targets) {
    if (l.skipped !== undefined) { console.log(`#   SKIPPED ${l.scenario}: ${l.skipped}`); continue }
    const figure = l.kind === 'extra' ? `${signed(l.figure)} ms` : `${l.figure.toFixed(3)}×`
    const target = l.kind === 'extra' ? `≤ +${Number(l.target!.toFixed(2))} ms` : `≤ ${Number(l.target!.toFixed(2))}×`
    console.log(`#   ${met(l) ? 'met    ' : 'NOT MET'} ${l.scenario}: ${figure} (target ${target})`)
  }
  return missed.length
}

// ---------------------------------------------------------------------------------------------------------
// 1. Authenticated handshake

async function handshakes (): Promise<void> {
  const room = '/ws/rooms/lobby'
  const variants = [
    { name: 'plugin', server: 'handshake-plugin', path: room, cookie: GOOD_COOKIE, expect: '"status_code":200' },
    { name: 'plugin-rejected', server: 'handshake-plugin', path: room, cookie: BAD_COOKIE, expect: '"status_code":401' },
    { name: 'fastify-ws', server: 'handshake-fastify-ws', path: room, cookie: GOOD_COOKIE, expect: '"status_code":200' },
    { name: 'fastify-ws-rejected', server: 'handshake-fastify-ws', path: room, cookie: BAD_COOKIE, expect: '"status_code":401' },
    { name: 'ws', server: 'handshake-ws', path: room, cookie: GOOD_COOKIE, expect: '"status_code":200' },
    { name: 'ws-rejected', server: 'handshake-ws', path: room, cookie: BAD_COOKIE, expect: '"status_code":401' },
    ...(SOCKET_IO
      ? [
          { name: 'socketio', server: 'handshake-socketio', path: SOCKET_IO_PATH, reply: SOCKET_IO_CONNECT, cookie: GOOD_COOKIE, expect: '40{"sid"' },
          { name: 'socketio-rejected', server: 'handshake-socketio', path: SOCKET_IO_PATH, reply: SOCKET_IO_CONNECT, cookie: BAD_COOKIE, expect: '44{"message":"Unauthorized"' }
        ]
      : []),
    ...(UWS ? [{ name: 'uws', server: 'handshake-uws', path: room, cookie: GOOD_COOKIE, expect: '"status_code":200' }] : [])
  ]
  const rounds: Rounds = new Map()
  for (let round = 0; round < ROUNDS; round++) {
    for (const v of shuffle(variants)) {
      const server = await startServer(v.server)
      const { window, cpu } = openWindow(server, `handshake ${v.name} round ${round + 1}`)
      const load = await handshakeLoad({ port: server.port, path: v.path, cookie: v.cookie, expect: v.expect, reply: v.reply, rate: HANDSHAKE_RATE, window, maxInFlight: 2000 })
      record(rounds, 'handshake', v.name, summarize(await cpu, load, HANDSHAKE_RATE))
      await server.exit()
    }
  }
  compare(rounds, 'handshake', 'plugin', 'fastify-ws', 'CPU µs/handshake', 1.05)
  compare(rounds, 'handshake-vs-ws', 'plugin', 'ws', 'CPU µs/handshake')
  compareSocketIo(rounds, 'handshake-vs-socketio', 'plugin', 'socketio', 'CPU µs/handshake')
  compareLimit(rounds, 'handshake-vs-uws', 'plugin', 'uws', 'CPU µs/handshake')
  compare(rounds, 'handshake-rejected', 'plugin-rejected', 'fastify-ws-rejected', 'CPU µs/handshake', 1.05)
  compare(rounds, 'handshake-rejected-vs-ws', 'plugin-rejected', 'ws-rejected', 'CPU µs/handshake')
  compareSocketIo(rounds, 'handshake-rejected-vs-socketio', 'plugin-rejected', 'socketio-rejected', 'CPU µs/handshake')
  compare(rounds, 'handshake-p99', 'plugin', 'fastify-ws', 'ms p99', undefined, (r) => r.p99)
  keepDetails('handshake', rounds, 'CPU µs/handshake')
}

// ---------------------------------------------------------------------------------------------------------
// 2. Validated, routed message round trip

async function messages (): Promise<void> {
  const small = (n: number | string): string => JSON.stringify({ text: 'hello, chanx', n })
  const large = (n: number | string): string => JSON.stringify({ text: 'x'.repeat(4096), n })
  /** Chanx envelope, or Socket.IO's event array (`42<ack id>` is the frame's prefix, added per frame). */
  const chanx = (payload: string): string => `{"action":"echo","payload":${payload}}`
  const socketIo = (payload: string): string => `["echo",${payload}]`
  const loads = [
    { load: 'full', rate: MESSAGE_RATE, valid: small(42), invalid: small('42') },
    { load: '4k', rate: MESSAGE_4K_RATE, valid: large(42), invalid: large('42') },
    { load: 'half', rate: MESSAGE_RATE / 2, valid: small(42), invalid: small('42') }
  ]
  const servers = [
    { name: 'plugin', server: 'messages-plugin' },
    // The same plugin with a subscriber on the diagnostics channels of a round trip (docs/observability.md).
    { name: 'plugin-observed', server: 'messages-plugin-observed', onlyAt: 'full' },
    { name: 'fastify-ws', server: 'messages-fastify-ws' },
    { name: 'ws', server: 'messages-ws' },
    ...(SOCKET_IO ? [{ name: 'socketio', server: 'messages-socketio', notAt: 'half' }] : []),
    ...(UWS ? [{ name: 'uws', server: 'messages-uws', notAt: 'half' }] : [])
  ]
  const only = process.env.BENCH_MESSAGE_LOADS?.split(',')
  const variants = loads.filter((l) => only === undefined || only.includes(l.load))
    .flatMap((l) => servers.filter((s) => (!('notAt' in s) || s.notAt !== l.load) && (!('onlyAt' in s) || s.onlyAt === l.load))
      .map((s) => ({ ...l, ...s, key: `${s.name}@${l.load}` })))
  const rounds: Rounds = new Map()
  for (let round = 0; round < ROUNDS; round++) {
    for (const v of shuffle(variants)) {
      const server = await startServer(v.server)
      const io = v.name === 'socketio'
      const clients = io
        ? await openClients(`ws://127.0.0.1:${server.port}${SOCKET_IO_PATH}`, CONNECTIONS, { connect: '40' })
        : await openClients(`ws://127.0.0.1:${server.port}/echo`, CONNECTIONS)
      const wrap = io ? socketIo : chanx
      const { window, cpu } = openWindow(server, `messages ${v.key} round ${round + 1}`)
      const load = await messageLoad({ clients, valid: wrap(v.valid), invalid: wrap(v.invalid), invalidEvery: 10, rate: v.rate, window, prefix: io ? (i) => `42${i}` : undefined })
      record(rounds, 'messages', v.key, summarize(await cpu, load, v.rate))
      await closeClients(clients)
      await server.exit()
    }
  }
  compare(rounds, `messages (${MESSAGE_RATE}/s, 10% invalid)`, 'plugin@full', 'fastify-ws@full', 'CPU µs/round trip', 1.05)
  compare(rounds, 'messages-vs-ws', 'plugin@full', 'ws@full', 'CPU µs/round trip')
  compare(rounds, 'messages-observed-vs-unobserved', 'plugin-observed@full', 'plugin@full', 'CPU µs/round trip')
  compare(rounds, 'messages-observed-vs-fastify-ws', 'plugin-observed@full', 'fastify-ws@full', 'CPU µs/round trip')
  compareSocketIo(rounds, `messages-vs-socketio (${MESSAGE_RATE}/s, event + ack)`, 'plugin@full', 'socketio@full', 'CPU µs/round trip', 0.80)
  compareLimit(rounds, 'messages-vs-uws', 'plugin@full', 'uws@full', 'CPU µs/round trip')
  compare(rounds, `messages-4k (${MESSAGE_4K_RATE}/s)`, 'plugin@4k', 'fastify-ws@4k', 'CPU µs/round trip', 1.05)
  compare(rounds, 'messages-4k-vs-ws', 'plugin@4k', 'ws@4k', 'CPU µs/round trip')
  compareSocketIo(rounds, 'messages-4k-vs-socketio', 'plugin@4k', 'socketio@4k', 'CPU µs/round trip')
  compareLimit(rounds, 'messages-4k-vs-uws', 'plugin@4k', 'uws@4k', 'CPU µs/round trip')
  // The p99 target is against the hand-written pipeline on @fastify/websocket, whose p99 carries the same
  // framework and machine jitter; against raw ws it measured the machine's scheduling (docs/benchmarks.md).
  compare(rounds, `messages-p99-half-load (${MESSAGE_RATE / 2}/s)`, 'plugin@half', 'fastify-ws@half', 'ms p99', 1.3, (r) => r.p99)
  compare(rounds, 'messages-p99-half-load-vs-ws', 'plugin@half', 'ws@half', 'ms p99', undefined, (r) => r.p99)
  keepDetails('messages', rounds, 'CPU µs/round trip')
}

// ---------------------------------------------------------------------------------------------------------
// 3. Memory per idle authenticated connection

/** `count` idle authenticated connections, held by child processes of at most 10,000 each (fd limit). */
async function idleClients (url: string, count: number, connect?: string): Promise<{ close(): Promise<void> }> {
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
      const child = spawn('taskset', ['-c', '1', 'node', '--import', 'tsx', 'bench/idle-clients.ts', url, String(n), GOOD_COOKIE, ...(connect !== undefined ? [connect] : [])], {
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
  if (MEMORY_COUNTS.some((n, i) => n < MEMORY_COUNTS_ASKED[i]!)) {
    note(`the hard fd limit is ${HARD_FDS} and cannot be raised here, so the server holds at most ${HARD_FDS - 100} sockets: ` +
      `counts were capped to ${MEMORY_COUNTS.join(', ')}`)
  }
  const room = '/ws/rooms/lobby'
  const variants = [
    { name: 'plugin', server: 'handshake-plugin', path: room },
    { name: 'bare-fastify-ws', server: 'bare-fastify-ws', path: room },
    { name: 'fastify-ws-jwt', server: 'handshake-fastify-ws', path: room },
    ...(SOCKET_IO ? [{ name: 'socketio', server: 'handshake-socketio', path: SOCKET_IO_PATH, connect: SOCKET_IO_CONNECT }] : []),
    ...(UWS ? [{ name: 'uws', server: 'handshake-uws', path: room }] : [])
  ]
  for (const count of MEMORY_COUNTS) {
    const rounds: Rounds = new Map()
    const heap: Rounds = new Map()
    for (let round = 0; round < MEMORY_ROUNDS; round++) {
      for (const v of shuffle(variants)) {
        const server = await startServer(v.server)
        // Warm-up: what a server makes once (compiled code of its paths, parser and buffer pools) is not a
        // cost per connection, and would otherwise be divided among the connections counted.
        if (MEMORY_WARMUP > 0) {
          try {
            await (await idleClients(`ws://127.0.0.1:${server.port}${v.path}`, MEMORY_WARMUP, 'connect' in v ? v.connect : undefined)).close()
          } catch (err) {
            note(`memory ${count} ${v.name}: the warm-up connections failed: ${(err as Error).message}`)
          }
          await sleep(500)
        }
        const before = await server.request<Mem>({ cmd: 'mem' }, 'mem')
        let clients
        try {
          clients = await idleClients(`ws://127.0.0.1:${server.port}${v.path}`, count, 'connect' in v ? v.connect : undefined)
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
    compare(rounds, `memory-${count} rss-vs-fastify-ws-jwt`, 'plugin', 'fastify-ws-jwt', 'bytes/connection', 1.0)
    compare(heap, `memory-${count} heap-vs-fastify-ws-jwt`, 'plugin', 'fastify-ws-jwt', 'bytes/connection', 1.0)
    compareSocketIo(rounds, `memory-${count} rss-vs-socketio`, 'plugin', 'socketio', 'bytes/connection')
    compareSocketIo(heap, `memory-${count} heap-vs-socketio`, 'plugin', 'socketio', 'bytes/connection')
    // uWS keeps its sockets outside the JS heap and its RSS barely grows (a ratio of 18, then -214, in the
    // 2026-12-01 runs): both figures are reported, without a ratio.
    compareLimit(rounds, `memory-${count} rss-vs-uws`, 'plugin', 'uws', 'bytes/connection RSS (uWS: outside V8\'s heap)', true)
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
    ...(redis !== null ? [{ name: 'plugin-redis', server: 'broadcast-plugin-redis', path: '/feed' }] : []),
    ...(SOCKET_IO ? [{ name: 'socketio-room', server: 'broadcast-socketio', path: SOCKET_IO_PATH, connect: '40' }] : []),
    ...(UWS ? [{ name: 'uws-publish', server: 'broadcast-uws', path: '/' }] : [])
  ]
  try {
    for (const size of BROADCAST_SIZES) {
      const rate = BROADCAST_DELIVERIES / size
      const rounds: Rounds = new Map()
      for (let round = 0; round < ROUNDS; round++) {
        const floor: typeof servers = redis !== null && REDIS_FLOOR_SIZES.has(size) ? [{ name: 'plugin-redis-floor', server: 'broadcast-plugin-redis-floor', path: '/feed' }] : []
        for (const v of shuffle([...servers, ...floor])) {
          const server = await startServer(v.server, redis !== null ? { BENCH_REDIS_URL: redis.url } : {})
          const clients = await openClients(`ws://127.0.0.1:${server.port}${v.path}`, size, { batch: 500, ...('connect' in v ? { connect: v.connect } : {}) })
          await sleep(200)
          const { window, cpu } = openWindow(server, `broadcast-${size} ${v.name} round ${round + 1}`)
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
        // Where the floor runs, the target is what fastify-chanx adds above a bare ioredis trip: against in
        // process, the figure is mostly the trip itself, which measures the machine (docs/benchmarks.md).
        const floored = REDIS_FLOOR_SIZES.has(size)
        compare(rounds, `broadcast-${size}-redis`, 'plugin-redis', 'plugin', 'CPU µs/delivered message', floored ? undefined : 1.15)
        if (floored) {
          compare(rounds, `broadcast-${size}-redis-floor`, 'plugin-redis-floor', 'plugin', 'CPU µs/delivered message')
          compare(rounds, `broadcast-${size}-redis-vs-floor`, 'plugin-redis', 'plugin-redis-floor', 'CPU µs/delivered message', 1.10)
        }
        const redisRuns = rounds.get('plugin-redis') ?? []
        const localRuns = rounds.get('plugin') ?? []
        const line: Line = {
          scenario: `broadcast-${size}-redis extra median latency`,
          plugin: median(redisRuns.map((r) => r.p50)),
          baseline: median(localRuns.map((r) => r.p50)),
          figure: median(redisRuns.map((r, i) => r.p50 - (localRuns[i]?.p50 ?? NaN))),
          kind: 'extra',
          unit: 'ms p50 (Redis − in process)',
          target: 2
        }
        if (!Number.isFinite(line.figure)) line.skipped = 'no round with both latencies measured'
        lines.push(line)
        printLine(line)
      } else {
        for (const scenario of [`broadcast-${size}-redis`, `broadcast-${size}-redis extra median latency`]) {
          const line: Line = { scenario, plugin: NaN, baseline: NaN, figure: NaN, kind: scenario.endsWith('latency') ? 'extra' : 'ratio', unit: '', target: scenario.endsWith('latency') ? 2 : 1.15, skipped: redisSkip ?? 'no Redis' }
          lines.push(line)
          printLine(line)
        }
      }
      compareSocketIo(rounds, `broadcast-${size}-vs-socketio-room`, 'plugin', 'socketio-room', 'CPU µs/delivered message')
      compareLimit(rounds, `broadcast-${size}-vs-uws-publish`, 'plugin', 'uws-publish', 'CPU µs/delivered message')
      keepDetails(`broadcast-${size}`, rounds, 'CPU µs/delivered message')
    }
  } finally {
    await redis?.stop()
  }
}

// ---------------------------------------------------------------------------------------------------------
// Socket.IO conformance: before any Socket.IO figure, socket.io-client (websocket transport only) checks that
// the Socket.IO servers answer as the harness's raw frames expect: refused and accepted handshakes, the echo
// acknowledgement and the validation error, and a room broadcast.

async function checkSocketIo (): Promise<void> {
  const connectOnce = (port: number, cookie: string): Promise<{ socket: ReturnType<typeof socketIoClient>, error?: Error }> => new Promise((resolve) => {
    const socket = socketIoClient(`http://127.0.0.1:${port}`, { transports: ['websocket'], extraHeaders: { cookie }, auth: { room: 'lobby' }, reconnection: false, timeout: 5000 })
    socket.once('connect', () => resolve({ socket }))
    socket.once('connect_error', (error) => resolve({ socket, error }))
  })
  const fail = (what: string): never => { throw new Error(`Socket.IO conformance check: ${what}`) }
  const handshake = await startServer('handshake-socketio')
  try {
    const refused = await connectOnce(handshake.port, BAD_COOKIE)
    refused.socket.close()
    if (refused.error?.message !== 'Unauthorized') fail(`a bad token got ${refused.error?.message ?? 'connected'}`)
    const accepted = await connectOnce(handshake.port, GOOD_COOKIE)
    accepted.socket.close()
    if (accepted.error !== undefined) fail(`a good token got ${accepted.error.message}`)
  } finally {
    await handshake.exit()
  }
  const messages = await startServer('messages-socketio')
  try {
    const { socket, error } = await connectOnce(messages.port, GOOD_COOKIE)
    if (error !== undefined) fail(`echo server refused: ${error.message}`)
    const echo = await socket.timeout(5000).emitWithAck('echo', { text: 'hello, chanx', n: 42 }) as unknown
    const invalid = await socket.timeout(5000).emitWithAck('echo', { text: 'hello, chanx', n: '42' }) as { error?: unknown[] }
    socket.close()
    if (JSON.stringify(echo) !== '{"text":"hello, chanx","n":42}') fail(`echo acknowledged ${JSON.stringify(echo)}`)
    if (!Array.isArray(invalid.error) || invalid.error.length === 0) fail(`an invalid payload was acknowledged with ${JSON.stringify(invalid)}`)
  } finally {
    await messages.exit()
  }
  const broadcast = await startServer('broadcast-socketio')
  try {
    const { socket, error } = await connectOnce(broadcast.port, GOOD_COOKIE)
    if (error !== undefined) fail(`broadcast server refused: ${error.message}`)
    const tick = new Promise<unknown>((resolve) => socket.once('tick', resolve))
    broadcast.send({ cmd: 'broadcast', rate: 100 })
    const payload = await Promise.race([tick, sleep(5000).then(() => null)]) as { t?: unknown } | null
    socket.close()
    if (typeof payload?.t !== 'number') fail(`the room broadcast delivered ${JSON.stringify(payload)}`)
  } finally {
    await broadcast.exit()
  }
  console.log('# Socket.IO conformance (socket.io-client, websocket transport): refused and accepted handshakes, echo ack, validation error, room broadcast: ok')
}

async function main (): Promise<void> {
  console.log(`# fastify-chanx benchmarks: ${os.cpus().length} cores, Node ${process.version}, warm-up ${WARMUP} ms, window ${WINDOW} ms, ${ROUNDS} rounds${QUICK ? ' (BENCH_QUICK)' : ''}`)
  console.log('# lower is better: CPU µs per operation, bytes per connection, ms of latency; ratio = plugin / baseline')
  console.log(`# baselines: fastify-ws, ws${SOCKET_IO ? `, socket.io ${packageVersion('socket.io')}` : ''}${UWS ? `, uWebSockets.js ${packageVersion('@trufflesuite/uws-js-unofficial')} (limit)` : ''}`)
  if (!UWS) note(`uWebSockets.js limit rows skipped: ${UWS_SKIP}`)
  if (SOCKET_IO) await checkSocketIo()
  if (SCENARIOS.has('handshake')) { await handshakes(); writeResults() }
  if (SCENARIOS.has('messages')) { await messages(); writeResults() }
  if (SCENARIOS.has('memory')) { await memory(); writeResults() }
  if (SCENARIOS.has('broadcast')) { await broadcasts(); writeResults() }
  const missed = printTargets()
  if (WRITE) console.log('# wrote bench/RESULTS.md')
  if (process.env.BENCH_STRICT === '1' && missed > 0) process.exitCode = 1
}

if (process.env.BENCH_PINNED === undefined) {
  // The servers load the build, as users install it (bench/server.ts): make it from the current sources.
  if (process.env.BENCH_PLUGIN !== 'source' && spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' }).status !== 0) {
    throw new Error('bench: npm run build failed')
  }
  // Re-run this file pinned to core 1 with a raised fd limit (root, or a hard limit high enough, needed).
  // WS_NO_BUFFER_UTIL: `ws` (in every server and client) masks in JavaScript, as with the project's own
  // dependencies; bufferutil is in node_modules only as an optional dependency of the uWS repackage.
  const child = spawn('sh', ['-c', `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n $(ulimit -Hn); exec taskset -c 1 node --import tsx bench/run.ts`], {
    cwd: ROOT, stdio: 'inherit', env: { ...process.env, BENCH_PINNED: '1', WS_NO_BUFFER_UTIL: '1' }
  })
  child.on('exit', (code) => { process.exitCode = code ?? 1 })
} else {
  main().catch((err: unknown) => { console.error(err); process.exit(1) })
}
