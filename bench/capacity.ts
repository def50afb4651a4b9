/**
 * Measured capacity (issue 18): what one process and one Redis hold on this machine, as CPU time per
 * operation and bytes per socket, the inputs of the capacity model in docs/scaling.md.
 *
 *     npm run bench:capacity                          # every scenario; writes the capacity section of bench/RESULTS.md
 *     CAPACITY_QUICK=1 npm run bench:capacity         # short windows, small counts, writes nothing
 *     CAPACITY_SCENARIOS=sockets,handshake,messages,fanout,redis,storm   # a subset (the section keeps the other rows)
 *     CAPACITY_WRITE=0                                # print only
 *
 * Scenarios:
 *   sockets    idle authenticated sockets (JWT cookie, bench/server.ts `handshake-plugin`) in one server run with
 *              --max-old-space-size=1024, opened in steps by bench/idle-clients.ts processes; heap and RSS after a
 *              forced GC at each step; the fd limit stops the count first here, so the 1 GiB figure is a projection
 *              from the measured per-socket slope
 *   handshake  CPU µs per authenticated handshake at fixed offered rates (bench/clients.ts handshakeLoad)
 *   messages   CPU µs per validated, routed message round trip (the model's inbound cost)
 *   fanout     1 -> 3 app processes on the plugin's `redis` option sharing one redis-server; a publisher process
 *              broadcasts to a group whose members are spread over the processes; CPU per delivery per process,
 *              publisher CPU per broadcast, Redis CPU (INFO cpu)
 *   redis      Redis CPU per published and per delivered message: single node PUBLISH against a 3-primary cluster
 *              with SPUBLISH (sharded) and with classic PUBLISH (bench/capacity-redis.ts)
 *   storm      N sockets dropped at once by the server (close 1012) reconnect, with and without jitter, and with
 *              the listen backlog at Node's 511 or 4096 (bench/capacity-storm-clients.ts: raw TCP dialing, the
 *              client's own defaultPolicy deciding each delay); CAPACITY_STORM_ROUNDS rounds (default 2)
 *
 * Servers run pinned to core 0; this harness re-executes itself pinned to core 1 (its children, redis-server
 * included, inherit that), except that the `redis` scenario pins its redis-servers to core 0, where no app
 * server runs then. The machine is shared, so CPU time per operation is the figure; wall rates are context.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createSigner } from 'fast-jwt'
import { Redis } from 'ioredis'
import { closeClients, handshakeLoad, messageLoad, now, openClients, receiveBroadcasts } from './clients'
import { COOKIE, SECRET, findSection, sectionMarks, withSection } from './common'
import { idleCpu, measurePubsub, redisCpu, startRedis, ENVELOPE, type PubsubResult } from './capacity-redis'
import { RedisServer } from '../test/helpers/redis'
import { reconnectTables } from './simulate-reconnect'
import { scalingTables } from './simulate-scaling'

const ROOT = path.resolve(__dirname, '..')
const QUICK = process.env.CAPACITY_QUICK === '1'
const ALL_SCENARIOS = ['sockets', 'handshake', 'messages', 'fanout', 'redis', 'storm']
const SCENARIOS = new Set((process.env.CAPACITY_SCENARIOS ?? ALL_SCENARIOS.join(',')).split(','))
const WARMUP = Number(process.env.CAPACITY_WARMUP ?? (QUICK ? 1 : 3)) * 1000
const WINDOW = Number(process.env.CAPACITY_WINDOW ?? (QUICK ? 2 : 10)) * 1000
const HARD_FDS = Number(spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim()) || 65536
const NR_OPEN = Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim())
/** Socket counts of the sockets scenario; the last is what fits under the hard fd limit. */
const SOCKET_STEPS = (process.env.CAPACITY_SOCKETS ?? (QUICK ? '2000,4000' : `5000,10000,15000,${HARD_FDS - 200}`)).split(',').map((n) => Math.min(Number(n), HARD_FDS - 200))
const HANDSHAKE_RATES = (process.env.CAPACITY_HANDSHAKE_RATES ?? (QUICK ? '400' : '400,800,1200')).split(',').map(Number)
const FANOUT_DELIVERIES = Number(process.env.CAPACITY_FANOUT_DELIVERIES ?? 20000)
const FANOUT_GROUPS = (process.env.CAPACITY_FANOUT_GROUPS ?? (QUICK ? '3,1000' : '3,30,200,2000')).split(',').map(Number)
const PUBSUB_RATE = Number(process.env.CAPACITY_PUBSUB_RATE ?? 10000)
const PUBSUB_GROUPS = Number(process.env.CAPACITY_PUBSUB_GROUPS ?? 1000)
const PUBSUB_SUBSCRIBERS = (process.env.CAPACITY_PUBSUB_SUBSCRIBERS ?? (QUICK ? '3' : '3,10')).split(',').map(Number)
const STORM_CLIENTS = Number(process.env.CAPACITY_STORM_CLIENTS ?? (QUICK ? 2000 : 10000))
/** `<policy>[@<listen backlog>]`: Node's default backlog is 511 (the kernel caps it at net.core.somaxconn). */
const STORM_POLICIES = (process.env.CAPACITY_STORM_POLICIES ?? 'fixed,jitter,jitter@4096,jitter-5000').split(',')
const STORM_ROUNDS = Number(process.env.CAPACITY_STORM_ROUNDS ?? (QUICK ? 1 : 2))
const SOMAXCONN = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim())

const sign = createSigner({ key: SECRET, expiresIn: 3600_000 })
const GOOD_COOKIE = `${COOKIE}=${sign({ sub: 'alice' }) as string}`
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------------------
// Rows of the RESULTS.md section, and the measured inputs of bench/simulate-scaling.ts

interface Row { scenario: string, measure: string, value: number, unit: string, detail: string }
const rows: Row[] = []
const notes: string[] = []
function row (scenario: string, measure: string, value: number, unit: string, detail = ''): void {
  rows.push({ scenario, measure, value, unit, detail })
  console.log(`capacity ${scenario} ${measure}: ${fmt(value)} ${unit}${detail !== '' ? ` (${detail})` : ''}`)
}
function note (scenario: string, text: string): void { notes.push(`- (${scenario}) ${text}`); console.log(`# note: ${text}`) }
function fmt (x: number): string {
  if (!Number.isFinite(x)) return '-'
  const a = Math.abs(x)
  return a >= 1000 ? Math.round(x).toLocaleString('en-US') : a >= 10 ? x.toFixed(1) : x.toFixed(2)
}

const MEASURED_FILE = path.join(ROOT, 'bench', 'capacity-measured.json')
/** Inputs of the model, merged into bench/capacity-measured.json (so a partial run keeps the other scenarios' values). */
const measured: Record<string, number | string> = {}

// ---------------------------------------------------------------------------------------------------------
// Child processes with the IPC of bench/server.ts

interface Child {
  port: number
  pid: number
  request<T>(cmd: Record<string, unknown>, reply: string): Promise<T>
  send(cmd: Record<string, unknown>): void
  exit(): Promise<void>
}

async function startChild (command: string, env: Record<string, string>): Promise<Child> {
  const child: ChildProcess = spawn('sh', ['-c', `ulimit -n $(ulimit -Hn); exec ${command}`], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env, NODE_ENV: 'production' }
  })
  const waiting = new Map<string, (msg: unknown) => void>()
  child.on('message', (msg: { type: string }) => {
    const resolve = waiting.get(msg.type)
    waiting.delete(msg.type)
    resolve?.(msg)
  })
  const port = await new Promise<number>((resolve, reject) => {
    waiting.set('ready', (msg) => resolve((msg as { port: number }).port))
    child.once('exit', (code) => reject(new Error(`${command} exited with ${code}`)))
  })
  return {
    port,
    pid: child.pid!,
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

interface Cpu { user: number, system: number }
const cpuOf = async (child: Child): Promise<number> => {
  const c = await child.request<Cpu>({ cmd: 'cpu' }, 'cpu')
  return c.user + c.system
}

const benchServer = (variant: string, flags = ''): Promise<Child> =>
  startChild(`taskset -c 0 node --expose-gc ${flags} --import tsx bench/server.ts`, { BENCH_VARIANT: variant })
const capacityServer = (variant: string, env: Record<string, string> = {}): Promise<Child> =>
  startChild('taskset -c 0 node --import tsx bench/capacity-server.ts', { ...env, CAPACITY_VARIANT: variant })

// ---------------------------------------------------------------------------------------------------------
// 1. Idle authenticated sockets in a 1 GiB heap

interface Mem { rss: number, heapUsed: number, external: number }

/** A bench/idle-clients.ts process holding `count` authenticated sockets; resolves its closer. */
function idleClients (url: string, count: number): Promise<() => Promise<void>> {
  return new Promise((resolve, reject) => {
    const child = spawn('node', ['--import', 'tsx', 'bench/idle-clients.ts', url, String(count), GOOD_COOKIE], {
      cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    })
    const close = (): Promise<void> => new Promise((resolve) => {
      if (child.exitCode !== null) { resolve(); return }
      child.once('exit', () => resolve())
      child.send({ cmd: 'close' })
    })
    child.once('message', (msg: { type: string, message?: string }) => {
      if (msg.type === 'open') resolve(close)
      else { child.kill('SIGKILL'); reject(new Error(msg.message)) }
    })
    child.once('exit', (code) => reject(new Error(`idle clients exited with ${code}`)))
  })
}

/** Least-squares line through (x, y). */
function fit (points: Array<[number, number]>): { slope: number, intercept: number } {
  const n = points.length
  const mx = points.reduce((a, [x]) => a + x, 0) / n
  const my = points.reduce((a, [, y]) => a + y, 0) / n
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0)
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0)
  const slope = sxy / sxx
  return { slope, intercept: my - slope * mx }
}

async function sockets (): Promise<void> {
  const canRaise = spawnSync('sh', ['-c', `ulimit -Hn ${HARD_FDS + 1}`]).status === 0
  note('sockets', `fd limits: \`ulimit -Hn\` = ${HARD_FDS}, /proc/sys/fs/nr_open = ${NR_OPEN}; raising the hard limit as root ` +
    `${canRaise ? 'works' : 'is refused (no CAP_SYS_RESOURCE in this container)'}, so one server process holds at most ~${HARD_FDS - 20} sockets here`)
  const server = await benchServer('handshake-plugin', '--max-old-space-size=1024')
  const closers: Array<() => Promise<void>> = []
  try {
    const base = await server.request<Mem>({ cmd: 'mem' }, 'mem')
    const heap: Array<[number, number]> = [[0, base.heapUsed]]
    const rss: Array<[number, number]> = [[0, base.rss]]
    row('sockets', 'heap / RSS with 0 sockets', base.heapUsed / 2 ** 20, 'MiB heap', `RSS ${fmt(base.rss / 2 ** 20)} MiB`)
    let open = 0
    for (const target of SOCKET_STEPS) {
      while (open < target) {
        const n = Math.min(5000, target - open)
        closers.push(await idleClients(`ws://127.0.0.1:${server.port}/ws/rooms/lobby`, n))
        open += n
      }
      await sleep(1000)
      const m = await server.request<Mem>({ cmd: 'mem' }, 'mem')
      heap.push([open, m.heapUsed])
      rss.push([open, m.rss])
      row('sockets', `${open.toLocaleString('en-US')} idle authenticated sockets`, (m.heapUsed - base.heapUsed) / open, 'heap B/socket',
        `heap ${fmt(m.heapUsed / 2 ** 20)} MiB, RSS ${fmt(m.rss / 2 ** 20)} MiB, RSS ${fmt((m.rss - base.rss) / open)} B/socket`)
    }
    const h = fit(heap)
    const r = fit(rss)
    const limit = 1024 * 2 ** 20
    const fits = Math.floor((limit - h.intercept) / h.slope)
    row('sockets', 'heap slope (least squares over the steps)', h.slope, 'heap B/socket', `intercept ${fmt(h.intercept / 2 ** 20)} MiB`)
    row('sockets', 'RSS slope (least squares over the steps)', r.slope, 'RSS B/socket', `intercept ${fmt(r.intercept / 2 ** 20)} MiB`)
    const stoppedBy = open >= HARD_FDS - 200 ? 'stopped by the fd limit, not the heap' : 'the step list ended'
    row('sockets', `largest count measured (${stoppedBy})`, open, 'sockets', `heap ${fmt(heap.at(-1)![1] / 2 ** 20)} of 1024 MiB`)
    row('sockets', 'PROJECTION: idle sockets in a 1 GiB heap', fits, 'sockets', `(1024 MiB − intercept) / slope; RSS there ≈ ${fmt((r.intercept + r.slope * fits) / 2 ** 30)} GiB`)
    measured.heapPerSocket = h.slope
    measured.rssPerSocket = r.slope
    measured.heapBase = h.intercept
    measured.rssBase = r.intercept
    measured.socketsMeasured = open
    measured.socketsPer1GiBHeap = fits
  } finally {
    for (const close of closers) await close()
    await server.exit()
  }
}

// ---------------------------------------------------------------------------------------------------------
// 2. Handshakes per second per core

async function handshakes (): Promise<void> {
  const perRate: number[] = []
  for (const rate of HANDSHAKE_RATES) {
    const server = await benchServer('handshake-plugin')
    const start = now() + WARMUP
    const window = { start, end: start + WINDOW }
    const cpu = Promise.all([sleep(window.start - now()).then(() => cpuOf(server)), sleep(window.end - now()).then(() => cpuOf(server))])
    const load = await handshakeLoad({ port: server.port, path: '/ws/rooms/lobby', cookie: GOOD_COOKIE, expect: '"status_code":200', rate, window, maxInFlight: 2000 })
    const [a, b] = await cpu
    await server.exit()
    const us = (b - a) / load.completed
    const sorted = load.latencies.sort((x, y) => x - y)
    const p99 = sorted[Math.ceil(0.99 * sorted.length) - 1] ?? NaN
    // A row with failures is not clean: the server paid for handshakes the client had given up on.
    if (load.failed === 0) perRate.push(us)
    row('handshake', `${rate}/s offered`, us, 'CPU µs/handshake', `achieved ${fmt(load.completed / (WINDOW / 1000))}/s, failed ${load.failed}, p99 ${fmt(p99)} ms, ` +
      `server core ${fmt((b - a) / WINDOW / 10)}% busy`)
  }
  if (perRate.length === 0) { note('handshake', 'every rate had failures (the load generator was starved?): no per-core figure'); return }
  // The upper median: with an even count, the costlier of the middle two (capacity is planned on it).
  const us = perRate.sort((x, y) => x - y)[Math.floor(perRate.length / 2)]!
  row('handshake', 'handshakes per second per core (1e6 / upper median µs of the rows without failures)', 1e6 / us, 'handshakes/s/core', `${fmt(us)} CPU µs/handshake`)
  measured.handshakeUs = us
}

// ---------------------------------------------------------------------------------------------------------
// 2b. A validated, routed message round trip (the model's inbound cost), bench/server.ts `messages-plugin`

async function messages (): Promise<void> {
  const rate = Number(process.env.CAPACITY_MESSAGE_RATE ?? 10000)
  const server = await benchServer('messages-plugin')
  const clients = await openClients(`ws://127.0.0.1:${server.port}/echo`, 100)
  try {
    const start = now() + WARMUP
    const window = { start, end: start + WINDOW }
    const cpu = Promise.all([sleep(window.start - now()).then(() => cpuOf(server)), sleep(window.end - now()).then(() => cpuOf(server))])
    const valid = JSON.stringify({ action: 'echo', payload: { text: 'hello, chanx', n: 42 } })
    const load = await messageLoad({ clients, valid, invalid: valid, invalidEvery: 1e9, rate, window })
    const [a, b] = await cpu
    const us = (b - a) / load.completed
    row('messages', `${rate}/s offered over 100 sockets`, us, 'CPU µs/round trip', `achieved ${fmt(load.completed / (WINDOW / 1000))}/s, failed ${load.failed}`)
    measured.messageUs = us
  } finally {
    await closeClients(clients)
    await server.exit()
  }
}

// ---------------------------------------------------------------------------------------------------------
// 3. Deliveries per second per core, 1 -> 3 processes on one Redis

async function fanout (): Promise<void> {
  const redis = await RedisServer.start()
  const info = new Redis(redis.url)
  try {
    for (const size of FANOUT_GROUPS) {
      const rate = FANOUT_DELIVERIES / size
      for (let processes = 1; processes <= 3; processes++) {
        const apps: Child[] = []
        for (let p = 0; p < processes; p++) apps.push(await capacityServer('fanout', { CAPACITY_REDIS_URL: redis.url }))
        const publisher = await startChild('node --import tsx bench/capacity-server.ts', { CAPACITY_VARIANT: 'publisher', CAPACITY_REDIS_URL: redis.url })
        const clients = await Promise.all(apps.map((app, p) =>
          openClients(`ws://127.0.0.1:${app.port}/feed`, Math.floor(size / processes) + (p < size % processes ? 1 : 0), { batch: 500 })))
        // Redis's idle floor with the subscribers connected (its cron), subtracted from the per-broadcast figure.
        const idleA = await redisCpu(info)
        await sleep(2000)
        const redisIdle = (await redisCpu(info) - idleA) / 2000
        const start = now() + WARMUP
        const window = { start, end: start + WINDOW }
        const loads = clients.map((c) => receiveBroadcasts(c, window, Math.max(1, Math.floor(c.length / 50))))
        publisher.send({ cmd: 'broadcast', rate })
        await sleep(window.start - now())
        const cpuA = await Promise.all([...apps, publisher].map(cpuOf))
        const redisA = await redisCpu(info)
        await sleep(window.end - now())
        const cpuB = await Promise.all([...apps, publisher].map(cpuOf))
        const redisB = await redisCpu(info)
        await sleep(100)
        const delivered = loads.reduce((a, l) => a + l.completed, 0)
        const broadcasts = rate * WINDOW / 1000
        const appUs = apps.map((_, p) => (cpuB[p]! - cpuA[p]!) / Math.max(1, loads[p]!.completed))
        const appTotal = apps.reduce((a, _, p) => a + cpuB[p]! - cpuA[p]!, 0)
        const pubUs = (cpuB[processes]! - cpuA[processes]!) / broadcasts
        const redisUs = redisB - redisA - redisIdle * WINDOW
        const latencies = loads.flatMap((l) => l.latencies).sort((x, y) => x - y)
        const p50 = latencies[Math.floor(latencies.length / 2)] ?? NaN
        const label = `group ${size}, ${processes} process${processes > 1 ? 'es' : ''}`
        row('fanout', `${label}: app CPU per delivery`, appTotal / delivered, 'CPU µs/delivery',
          `per process ${appUs.map(fmt).join(' / ')}; ${fmt(rate)} broadcasts/s, ${fmt(delivered / (WINDOW / 1000))} deliveries/s of ${fmt(FANOUT_DELIVERIES)} offered, p50 ${fmt(p50)} ms`)
        row('fanout', `${label}: deliveries per second per core (1e6 / app µs per delivery)`, 1e6 * delivered / appTotal, 'deliveries/s/core')
        row('fanout', `${label}: Redis CPU, net of its idle floor`, redisUs / broadcasts, 'Redis CPU µs/broadcast',
          `${fmt(redisUs / delivered)} µs/delivery; idle floor ${fmt(redisIdle * 1000 / 1e4)}% of a core; publisher process ${fmt(pubUs)} CPU µs/broadcast (its 1 ms timer loop included)`)
        // App CPU per broadcast in one process against its local members: the model fits a per-broadcast
        // and a per-delivery cost through these points.
        measured[`fanoutProcessUsPerBroadcast_${size}_${processes}`] = appTotal / processes / broadcasts
        measured[`fanoutLocalMembers_${size}_${processes}`] = size / processes
        measured[`fanoutAchieved_${size}_${processes}`] = delivered / (FANOUT_DELIVERIES * WINDOW / 1000)
        if (processes === 1 && size === FANOUT_GROUPS.at(-1)) measured.deliveryUs = appTotal / delivered
        if (processes === 3 && size === FANOUT_GROUPS.at(-1)) measured.deliveryUs3 = appTotal / delivered
        if (processes === 3 && size === FANOUT_GROUPS[0]) measured.redisBroadcastUs3 = redisUs / broadcasts
        if (processes === 3 && size === FANOUT_GROUPS[0]) measured.publisherBroadcastUs = pubUs
        for (const c of clients) await closeClients(c)
        for (const child of [...apps, publisher]) await child.exit()
      }
    }
  } finally {
    info.disconnect()
    await redis.stop()
  }
}

// ---------------------------------------------------------------------------------------------------------
// 4. Redis CPU per delivery: single node against a 3-shard cluster

async function redisPubsub (): Promise<void> {
  const opts = (subscribers: number, groups = PUBSUB_GROUPS): { groups: number, subscribers: number, rate: number, warmupMs: number, windowMs: number } =>
    ({ groups, subscribers, rate: PUBSUB_RATE, warmupMs: WARMUP, windowMs: WINDOW })
  const report = (r: PubsubResult, idle: number[], suffix = ''): void => {
    const total = r.nodeCpu.reduce((a, b) => a + b, 0)
    const idleTotal = idle.reduce((a, b) => a + b, 0) * (WINDOW / (QUICK ? 2000 : 5000))
    const label = `${r.mode}${suffix}, ${r.subscribers} subscriber processes, ${r.groups} group${r.groups > 1 ? 's' : ''}`
    const spread = r.nodeCpu.map((c, n) => `${fmt(100 * c / total)}% CPU / ${fmt(100 * r.nodePublished[n]! / r.published)}% msgs`).join(', ')
    row('redis', `${label}: per published message`, r.perPublished, 'Redis CPU µs (all nodes)',
      `${fmt(r.published / (WINDOW / 1000))} msg/s of ${ENVELOPE.length} B, ${r.delivered.toLocaleString('en-US')} of ${(r.published * r.subscribers).toLocaleString('en-US')} deliveries, ` +
      `${fmt((total - idleTotal) / r.published)} µs net of the idle floor; per node: ${spread}`)
    row('redis', `${label}: per delivered message`, r.perDelivered, 'Redis CPU µs (all nodes)')
  }
  const single = await startRedis({ cluster: false, count: 1, cpu: '0' })
  try {
    const idle = await idleCpu(single, QUICK ? 2000 : 5000)
    row('redis', 'single node idle floor', idle[0]! / (QUICK ? 2 : 5) / 1e4, '% of a core')
    for (const k of PUBSUB_SUBSCRIBERS) {
      const r = await measurePubsub(single, 'single', opts(k))
      report(r, idle)
      // The same per-node rate as one shard of the 3-node cluster gets: the batching of a node depends on its rate.
      const third = await measurePubsub(single, 'single', { ...opts(k), rate: PUBSUB_RATE / 3 })
      report(third, idle, ' at a third of the rate')
      if (k === 3) measured.redisSingleThirdRatePerPublished3 = third.perPublished
      if (k === 3) { measured.redisSinglePerPublished3 = r.perPublished; measured.redisSinglePerDelivered3 = r.perDelivered }
      if (k === PUBSUB_SUBSCRIBERS.at(-1)) { measured.redisSingleSubscribersMax = k; measured.redisSinglePerPublishedMax = r.perPublished }
    }
  } finally {
    await single.stop()
  }
  const cluster = await startRedis({ cluster: true, count: 3, cpu: '0' })
  try {
    const idle = await idleCpu(cluster, QUICK ? 2000 : 5000)
    row('redis', '3-primary cluster idle floor (sum of nodes)', idle.reduce((a, b) => a + b, 0) / (QUICK ? 2 : 5) / 1e4, '% of a core')
    for (const k of PUBSUB_SUBSCRIBERS) {
      const sharded = await measurePubsub(cluster, 'cluster-sharded', opts(k))
      report(sharded, idle)
      const classic = await measurePubsub(cluster, 'cluster-classic', opts(k))
      report(classic, idle)
      if (k === 3) {
        measured.redisShardedPerPublished3 = sharded.perPublished
        measured.redisShardedPerDelivered3 = sharded.perDelivered
        measured.redisClassicPerPublished3 = classic.perPublished
      }
      if (k === PUBSUB_SUBSCRIBERS.at(-1)) { measured.redisShardedPerPublishedMax = sharded.perPublished; measured.redisClassicPerPublishedMax = classic.perPublished }
    }
    const hot = await measurePubsub(cluster, 'cluster-sharded', opts(3, 1))
    report(hot, idle)
    measured.redisHotShardPerPublished3 = Math.max(...hot.nodeCpu) / hot.published
    // The same hot group over classic PUBLISH: every node pays for it, so adding shards cannot relieve it.
    const hotClassic = await measurePubsub(cluster, 'cluster-classic', opts(3, 1))
    report(hotClassic, idle)
    measured.redisHotClassicPerPublished3 = hotClassic.perPublished
  } finally {
    await cluster.stop()
  }
}

// ---------------------------------------------------------------------------------------------------------
// 5. Reconnect storm

interface Storm { times: number[], retries: number, stopped: number, maxAttempt: number }

/** The kernel's count of connections dropped on a full accept queue (TcpExt ListenDrops, machine-wide). */
function listenDrops (): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'))
  const names = lines[0]!.split(' ')
  const values = lines[1]!.split(' ')
  return Number(values[names.indexOf('ListenDrops')])
}

async function storm (): Promise<void> {
  // Each round runs every policy once (a shared machine makes one storm a noisy sample); the summary row of
  // each policy is the median over the rounds.
  const allBack = new Map<string, number[]>()
  for (let round = 1; round <= STORM_ROUNDS; round++) {
    for (const entry of STORM_POLICIES) await stormOnce(entry, round, allBack)
  }
  for (const [entry, values] of allBack) {
    const sorted = [...values].sort((a, b) => a - b)
    const median = sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2
    row('storm', `${STORM_CLIENTS.toLocaleString('en-US')} clients, ${entry}: median of ${values.length} rounds, all back after`, median, 'ms', `rounds: ${values.map(fmt).join(', ')} ms`)
    if (entry === 'fixed') measured.stormFixedAllBackMs = median
    if (entry === 'jitter') measured.stormJitterAllBackMs = median
    if (entry === 'jitter@4096') measured.stormJitterBacklog4096AllBackMs = median
    if (entry === 'jitter-5000') measured.stormJitter5000AllBackMs = median
  }
}

async function stormOnce (entry: string, round: number, allBack: Map<string, number[]>): Promise<void> {
  const [policy, backlogText] = entry.split('@') as [string, string | undefined]
  const backlog = Number(backlogText ?? 511)
  const server = await capacityServer('storm', { CAPACITY_BACKLOG: String(backlog) })
  const clients = spawn('node', ['--import', 'tsx', 'bench/capacity-storm-clients.ts', `ws://127.0.0.1:${server.port}/ws`, String(STORM_CLIENTS), policy], {
    cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const message = (type: string): Promise<unknown> => new Promise((resolve, reject) => {
    const on = (msg: { type: string, message?: string }): void => {
      if (msg.type === type) { clients.off('message', on); resolve(msg) } else if (msg.type === 'failed') reject(new Error(msg.message))
    }
    clients.on('message', on)
  })
  try {
    await message('open')
    await sleep(500)
    const done = message('storm') as Promise<Storm>
    const cpuA = await cpuOf(server)
    const dropsA = listenDrops()
    const t0 = now()
    clients.send({ cmd: 'storm' })
    await server.request({ cmd: 'drop' }, 'dropped')
    const result = await done
    const wall = now() - t0
    const cpuB = await cpuOf(server)
    const drops = listenDrops() - dropsA
    const times = result.times.sort((a, b) => a - b)
    const buckets = new Map<number, number>()
    for (const t of times) buckets.set(Math.floor(t / 100), (buckets.get(Math.floor(t / 100)) ?? 0) + 1)
    const peak100 = Math.max(...buckets.values()) * 10
    let peak1s = 0
    for (let i = 0, j = 0; i < times.length; i++) {
      while (times[i]! - times[j]! > 1000) j++
      peak1s = Math.max(peak1s, i - j + 1)
    }
    const pct = (p: number): number => times[Math.min(times.length - 1, Math.ceil(p * times.length) - 1)] ?? NaN
    const name = policy === 'fixed' ? 'no jitter (500 ms × 2^attempt, fixed)' : policy === 'jitter' ? 'full jitter, default (below 500 ms × 2^attempt)' : `full jitter, initialDelay ${policy.slice(7)} ms`
    allBack.set(entry, [...(allBack.get(entry) ?? []), times.length === STORM_CLIENTS ? pct(1) : NaN])
    row('storm', `round ${round}: ${STORM_CLIENTS.toLocaleString('en-US')} clients, ${name}, listen backlog ${Math.min(backlog, SOMAXCONN)}: all back after`, times.length === STORM_CLIENTS ? pct(1) : NaN, 'ms',
      `${times.length} reconnected, ${result.stopped} gave up, ${result.retries} failed attempts retried, max attempt ${result.maxAttempt}, ${drops.toLocaleString('en-US')} SYNs dropped on a full accept queue; ` +
      `p50 ${fmt(pct(0.5))} ms, p99 ${fmt(pct(0.99))} ms; peak ${fmt(peak100)}/s over 100 ms, ${fmt(peak1s)}/s over 1 s; ` +
      `server ${fmt((cpuB - cpuA) / STORM_CLIENTS)} CPU µs per reconnection (drop included), core ${fmt((cpuB - cpuA) / wall / 10)}% busy`)
    if (entry === 'jitter' && round === 1) {
      measured.stormClients = STORM_CLIENTS
      measured.stormReconnectUs = (cpuB - cpuA) / STORM_CLIENTS
    }
  } finally {
    clients.send({ cmd: 'close' })
    await new Promise((resolve) => clients.once('exit', resolve))
    await server.exit()
  }
}

// ---------------------------------------------------------------------------------------------------------
// RESULTS.md section

const SECTION = sectionMarks('capacity')

function writeSection (): void {
  let previous: Record<string, unknown> = {}
  try { previous = JSON.parse(readFileSync(MEASURED_FILE, 'utf8')) } catch {}
  const inputs = { ...previous, ...measured, date: new Date().toISOString(), node: process.version }
  if (QUICK || process.env.CAPACITY_WRITE === '0') { console.log(JSON.stringify(inputs, null, 2)); return }
  writeFileSync(MEASURED_FILE, JSON.stringify(inputs, null, 2) + '\n')
  const file = path.join(ROOT, 'bench', 'RESULTS.md')
  const text = readFileSync(file, 'utf8')
  const previousSection = findSection(text, 'capacity')
  // Rows of scenarios not run this time are kept from the previous section.
  const kept: string[] = []
  const keptNotes: string[] = []
  if (previousSection !== null) {
    const measuredPart = previousSection.split('### Simulated')[0]!
    for (const line of measuredPart.split('\n')) {
      const m = /^\| (\w+) \|/.exec(line)
      // A measured row has exactly five cells (its detail has no `|`).
      if (m !== null && ALL_SCENARIOS.includes(m[1]!) && !SCENARIOS.has(m[1]!) && line.split('|').length === 7) kept.push(line)
      const n = /^- \((\w+)\) /.exec(line)
      if (n !== null && !SCENARIOS.has(n[1]!)) keptNotes.push(line)
    }
  }
  const cpus = os.cpus()
  const out: string[] = [SECTION.start, '', '## Capacity (issue 18)', '']
  const ran = [...SCENARIOS].filter((name) => ALL_SCENARIOS.includes(name))
  out.push('Generated by `npm run bench:capacity` (`node --import tsx bench/capacity.ts`); ' +
    (ran.length > 0 ? `last run ${new Date().toISOString()} with \`CAPACITY_SCENARIOS=${ran.join(',')}\`` : `simulations recomputed ${new Date().toISOString()}`) +
    (kept.length > 0 ? ' (rows of other scenarios kept from earlier runs, each one run on this machine). ' : '. ') +
    'The model built on these rows is [docs/scaling.md](../docs/scaling.md); its inputs are in bench/capacity-measured.json.', '')
  out.push(`- Machine: ${cpus.length} cores (${cpus[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}, shared with other jobs`)
  out.push(`- Node.js ${process.version}, ${spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.trim().split(' ').slice(0, 3).join(' ')}`)
  out.push('- App servers pinned to core 0, load generators to core 1 (redis-server on core 1, except the `redis` rows: core 0); CPU time per operation from process.cpuUsage() and Redis `INFO cpu`')
  const loads = ALL_SCENARIOS.filter((name) => typeof inputs[`load_${name}` as keyof typeof inputs] === 'string')
    .map((name) => `${name} ${inputs[`load_${name}` as keyof typeof inputs] as string}`)
  out.push(`- ${WARMUP / 1000} s warm-up, ${WINDOW / 1000} s window, one run per row; 1-minute load average of the machine at the start → end of each scenario: ` +
    `${loads.length > 0 ? loads.join('; ') : 'not recorded'} (other jobs share the cores: wall rates and latencies are context, CPU time per operation is the figure)`, '')
  out.push('| scenario | measure | value | unit | detail |', '|---|---|---:|---|---|')
  out.push(...kept)
  for (const r of rows) out.push(`| ${r.scenario} | ${r.measure} | ${fmt(r.value)} | ${r.unit} | ${r.detail.replace(/\|/g, '/')} |`)
  if (notes.length + keptNotes.length > 0) out.push('', ...keptNotes, ...notes)
  out.push(...simulated(inputs as unknown as Record<string, number>))
  out.push('', SECTION.end)
  writeFileSync(file, withSection(text, 'capacity', out.join('\n')))
}

/** The model's tables from the inputs just written: SIMULATED, not measured. */
function simulated (inputs: Record<string, number>): string[] {
  try {
    const { lines, plans } = scalingTables(inputs)
    const million = plans.find((p) => p.sockets === 1_000_000)!
    return ['', '### Simulated from the rows above (not measured)', '',
      'Capacity model, `node --import tsx bench/simulate-scaling.ts` (workload assumptions in docs/scaling.md):', '', ...lines, '',
      'Reconnect storm, discrete-event simulation, `node --import tsx bench/simulate-reconnect.ts ' + million.processes + '`:', '',
      ...reconnectTables(inputs, million.processes)]
  } catch (err) {
    return ['', `Simulations not run: ${(err as Error).message}`]
  }
}

async function main (): Promise<void> {
  console.log(`# fastify-chanx capacity: ${os.cpus().length} cores, Node ${process.version}, warm-up ${WARMUP} ms, window ${WINDOW} ms${QUICK ? ' (CAPACITY_QUICK)' : ''}`)
  const runs: Record<string, () => Promise<void>> = { sockets, handshake: handshakes, messages, fanout, redis: redisPubsub, storm }
  for (const name of ALL_SCENARIOS) {
    if (!SCENARIOS.has(name)) continue
    const before = os.loadavg()[0]!
    await runs[name]!()
    measured[`load_${name}`] = `${before.toFixed(1)} → ${os.loadavg()[0]!.toFixed(1)} (${new Date().toISOString().slice(0, 16)}Z)`
  }
  writeSection()
}

if (process.env.CAPACITY_PINNED === undefined) {
  const child = spawn('sh', ['-c', 'ulimit -n $(ulimit -Hn); exec taskset -c 1 node --import tsx bench/capacity.ts'], {
    cwd: ROOT, stdio: 'inherit', env: { ...process.env, CAPACITY_PINNED: '1' }
  })
  child.on('exit', (code) => { process.exitCode = code ?? 1 })
} else {
  main().catch((err: unknown) => { console.error(err); process.exit(1) })
}
