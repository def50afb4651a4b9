/**
 * The capacity model of docs/scaling.md, computed from measured inputs only: bench/capacity-measured.json
 * (written by bench/capacity.ts) and the message round trip of the main table in bench/RESULTS.md.
 *
 *     node --import tsx bench/simulate-scaling.ts      # prints the model's tables; bench/capacity.ts puts them in RESULTS.md
 *
 * Every rate below is an ASSUMPTION of the model (WORKLOAD), stated in docs/scaling.md; every cost is a
 * measurement. The arithmetic is the whole model: nothing here runs a server.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { measuredInputs } from './simulate-reconnect'

/** The workload the tables assume, per socket unless said otherwise. */
export const WORKLOAD = {
  /** Messages a socket sends per minute (each a validated, routed round trip). */
  inboundPerMinute: 1,
  /** Each inbound message is broadcast to the sender's room, of this many members, placed on random processes. */
  roomSize: 50,
  /** One broadcast per minute to every socket (an announcement group holding everyone). */
  announcementsPerMinute: 1,
  /** A hot group: this share of all sockets, broadcast to this many times per second (a live event). */
  hotShare: 0.01,
  hotBroadcastsPerSecond: 10,
  /** Each socket reconnects once per this many minutes on average (mobile networks, tab sleeps, token expiry). */
  reconnectEveryMinutes: 30,
  /** Steady state uses at most this share of a core (the rest absorbs GC, bursts and reconnect storms). */
  cpuTarget: 0.5,
  /** Sockets may use this much of the 1 GiB heap (the rest is GC headroom). */
  heapTarget: 0.75 * 2 ** 30,
  /** A Redis shard's main thread at most this busy. */
  redisTarget: 0.5
}

export interface Inputs {
  heapPerSocket: number
  heapBase: number
  rssPerSocket: number
  rssBase: number
  handshakeUs: number
  messageUs: number
  /** App CPU per broadcast a process receives from Redis, and per local delivery. */
  broadcastUs: number
  deliveryUs: number
  /** Redis CPU per published message: `redisA + redisB × subscriber processes` (one shard). */
  redisA: number
  redisB: number
  /** Classic PUBLISH on a 3-node cluster: CPU on each node per published message (every node gets every message). */
  classicPerNodeUs: number
}

/** The validated round trip of the main benchmark table (`| messages | plugin@full | <µs> |`). */
function messageRoundTripUs (): number {
  const text = readFileSync(path.join(__dirname, 'RESULTS.md'), 'utf8')
  const m = /\| messages \| plugin@full \| ([\d.]+) \|/.exec(text)
  if (m === null) throw new Error('bench/RESULTS.md has no `messages | plugin@full` row: run `npm run bench` first')
  return Number(m[1])
}

/** Least squares of y = a + b·x. */
function line (points: Array<[number, number]>): { a: number, b: number } {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const b = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0) / points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return { a: my - b * mx, b }
}

export function inputsFrom (m: Record<string, number>): Inputs {
  // App CPU per received broadcast in one process = broadcastUs + deliveryUs × m local members, so per delivery
  // it is deliveryUs + broadcastUs / m: fitted as a line in 1/m over the fanout runs whose deliveries kept up
  // with the offered load (per delivery, so the runs with thousands of members do not swamp the small ones).
  const points: Array<[number, number]> = []
  for (const key of Object.keys(m)) {
    const k = /^fanoutProcessUsPerBroadcast_(\d+)_(\d+)$/.exec(key)
    if (k === null) continue
    if ((m[`fanoutAchieved_${k[1]}_${k[2]}`] ?? 1) < 0.95) continue
    const members = m[`fanoutLocalMembers_${k[1]}_${k[2]}`]!
    points.push([1 / members, m[key]! / members])
  }
  if (points.length < 2) throw new Error('bench/capacity-measured.json has fewer than two clean fanout points: run CAPACITY_SCENARIOS=fanout npm run bench:capacity')
  const perDelivery = line(points)
  const fan = { a: perDelivery.b, b: perDelivery.a }
  // Redis CPU per published message grows with its subscriber processes: the larger of the two measured
  // slopes (single node and sharded cluster, 3 -> max subscribers), since batching makes either noisy; when
  // both come out flat or negative, the per-delivered cost at the most subscribers bounds it.
  const k = m.redisSingleSubscribersMax ?? 10
  const slopes = [(m.redisSinglePerPublishedMax! - m.redisSinglePerPublished3!) / (k - 3), (m.redisShardedPerPublishedMax! - m.redisShardedPerPublished3!) / (k - 3)]
  const redisB = Math.max(...slopes) > 0 ? Math.max(...slopes) : m.redisSinglePerPublishedMax! / k
  // A cluster shard at the full message rate (the hot-group run: every message on one shard), 3 subscribers.
  const redisA = m.redisHotShardPerPublished3! - 3 * redisB
  return {
    heapPerSocket: m.heapPerSocket!,
    heapBase: m.heapBase!,
    rssPerSocket: m.rssPerSocket!,
    rssBase: m.rssBase!,
    handshakeUs: m.handshakeUs!,
    messageUs: m.messageUs ?? messageRoundTripUs(),
    broadcastUs: Math.max(0, fan.a),
    deliveryUs: fan.b,
    redisA,
    redisB,
    classicPerNodeUs: m.redisClassicPerPublished3! / 3
  }
}

export interface Plan {
  placement: Placement
  sockets: number
  processes: number
  socketsPerProcess: number
  bound: 'memory' | 'cpu'
  cores: number
  rssGiB: number
  appCpuPerProcess: number
  deliveriesPerSecond: number
  redisMessagesPerSecond: number
  redisCores: number
  shards: number
  classicNodeLoad: number
  hotGroupMembers: number
  hotGroupShardLoad: number
  hotGroupMaxBroadcasts: number
  handshakeCapacity: number
  jitterWindowS: number
  churnHandshakesPerSecond: number
}

/** Processes a room of `size` members on random processes touches, of `processes`. */
const spread = (size: number, processes: number): number => processes * (1 - (1 - 1 / processes) ** size)

/**
 * Where a room's members land: `random` (a plain load balancer: a room of 50 touches up to 50 processes,
 * each of which receives every broadcast of it from Redis) or `pinned` (the balancer routes by room, so a
 * room's members share one process and Redis carries its broadcasts to that process only).
 */
export type Placement = 'random' | 'pinned'

/** App CPU share of one core for a process holding `s` sockets in a fleet of `p` processes and `n` sockets. */
function processLoad (x: Inputs, s: number, p: number, n: number, placement: Placement): number {
  const w = WORKLOAD
  const roomBroadcasts = n * w.inboundPerMinute / 60
  const touched = placement === 'random' ? spread(w.roomSize, p) : 1
  const roomsReceived = roomBroadcasts * touched / p // broadcasts of rooms with a local member
  const deliveries = s * w.inboundPerMinute * w.roomSize / 60 + s * w.announcementsPerMinute / 60 + s * w.hotShare * w.hotBroadcastsPerSecond
  const broadcasts = roomsReceived + w.announcementsPerMinute / 60 + w.hotBroadcastsPerSecond
  const us = s * w.inboundPerMinute / 60 * x.messageUs + broadcasts * x.broadcastUs + deliveries * x.deliveryUs +
    s / (w.reconnectEveryMinutes * 60) * x.handshakeUs
  return us / 1e6
}

export function plan (x: Inputs, n: number, placement: Placement = 'random'): Plan {
  const w = WORKLOAD
  const byMemory = Math.floor((w.heapTarget - x.heapBase) / x.heapPerSocket)
  const load = (s: number): number => { const p = Math.ceil(n / s); return processLoad(x, Math.ceil(n / p), p, n, placement) }
  // The largest per-process count whose CPU stays under the target (binary search: the load grows with s).
  let s = Math.min(byMemory, n)
  let bound: 'memory' | 'cpu' = 'memory'
  if (load(s) > w.cpuTarget) {
    bound = 'cpu'
    let lo = 1
    let hi = s
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2)
      if (load(mid) <= w.cpuTarget) lo = mid
      else hi = mid
    }
    s = lo
  }
  const processes = Math.ceil(n / s)
  const perProcess = Math.ceil(n / processes)
  const roomBroadcasts = n * w.inboundPerMinute / 60
  const subscribers = placement === 'random' ? spread(w.roomSize, processes) : 1
  const redisUs = roomBroadcasts * (x.redisA + x.redisB * subscribers) +
    (w.announcementsPerMinute / 60 + w.hotBroadcastsPerSecond) * (x.redisA + x.redisB * processes)
  const redisCores = redisUs / 1e6
  const hotMembers = Math.round(n * w.hotShare)
  const hotPerMessage = x.redisA + x.redisB * Math.min(processes, hotMembers)
  const capacity = processes * 1e6 / x.handshakeUs
  return {
    placement,
    sockets: n,
    processes,
    socketsPerProcess: perProcess,
    bound,
    cores: processes,
    rssGiB: processes * (x.rssBase + perProcess * x.rssPerSocket) / 2 ** 30,
    appCpuPerProcess: processLoad(x, perProcess, processes, n, placement),
    deliveriesPerSecond: n * (w.inboundPerMinute * w.roomSize / 60 + w.announcementsPerMinute / 60 + w.hotShare * w.hotBroadcastsPerSecond),
    redisMessagesPerSecond: roomBroadcasts + w.announcementsPerMinute / 60 + w.hotBroadcastsPerSecond,
    redisCores,
    shards: Math.max(1, Math.ceil(redisCores / w.redisTarget)),
    classicNodeLoad: (roomBroadcasts + w.announcementsPerMinute / 60 + w.hotBroadcastsPerSecond) * x.classicPerNodeUs / 1e6,
    hotGroupMembers: hotMembers,
    hotGroupShardLoad: w.hotBroadcastsPerSecond * hotPerMessage / 1e6,
    hotGroupMaxBroadcasts: w.redisTarget * 1e6 / hotPerMessage,
    handshakeCapacity: capacity,
    jitterWindowS: n / (capacity / 2),
    churnHandshakesPerSecond: n / (w.reconnectEveryMinutes * 60)
  }
}

const int = (x: number): string => Math.round(x).toLocaleString('en-US')
const pct = (x: number): string => `${(100 * x).toFixed(x < 0.1 ? 1 : 0)}%`

export function scalingTables (m: Record<string, number>): { lines: string[], plans: Plan[] } {
  const x = inputsFrom(m)
  const sizes = [100_000, 1_000_000, 10_000_000]
  const plans = [...sizes.map((n) => plan(x, n, 'pinned')), ...sizes.map((n) => plan(x, n, 'random'))]
  const lines = [
    `Inputs (measured): heap ${int(x.heapPerSocket)} B and RSS ${int(x.rssPerSocket)} B per idle socket; ${x.handshakeUs.toFixed(0)} CPU µs per handshake; ` +
      `${x.messageUs.toFixed(1)} µs per validated message round trip; ${x.broadcastUs.toFixed(1)} µs per broadcast a process receives from Redis + ` +
      `${x.deliveryUs.toFixed(2)} µs per local delivery; Redis ${x.redisA.toFixed(1)} + ${x.redisB.toFixed(2)} µs × subscriber processes per published message on one shard; ` +
      `classic PUBLISH on a cluster ${x.classicPerNodeUs.toFixed(1)} µs on every node per message.`, '',
    '| concurrent sockets | 100k | 1M | 10M | 100k | 1M | 10M |', '|---|---:|---:|---:|---:|---:|---:|',
    '| room placement | pinned | pinned | pinned | random | random | random |',
    ...([
      ['app processes (1 core, 1 GiB heap each)', (p) => int(p.processes)],
      ['sockets per process (bound)', (p) => `${int(p.socketsPerProcess)} (${p.bound})`],
      ['app CPU per process (target ≤ 50%)', (p) => pct(p.appCpuPerProcess)],
      ['app memory, RSS total', (p) => `${p.rssGiB.toFixed(1)} GiB`],
      ['deliveries per second', (p) => int(p.deliveriesPerSecond)],
      ['Redis messages published per second', (p) => int(p.redisMessagesPerSecond)],
      ['Redis CPU (sharded pub/sub), cores', (p) => p.redisCores.toFixed(2)],
      ['Redis shards (each ≤ 50% busy)', (p) => int(p.shards)],
      ['classic PUBLISH: load on EVERY cluster node', (p) => `${pct(p.classicNodeLoad)} of a core, whatever the node count`],
      ['hot group: members / its shard busy', (p) => `${int(p.hotGroupMembers)} / ${pct(p.hotGroupShardLoad)}`],
      ['hot group: most broadcasts/s one group can take (its shard at 50%)', (p) => int(p.hotGroupMaxBroadcasts)],
      ['steady reconnections per second (churn)', (p) => int(p.churnHandshakesPerSecond)],
      ['fleet handshake capacity per second', (p) => int(p.handshakeCapacity)],
      ['smallest jitter window for a full restart (offered ≤ 50% capacity)', (p) => `${p.jitterWindowS.toFixed(1)} s`],
      ['total cores (app + Redis shards)', (p) => int(p.cores + p.shards)]
    ] as Array<[string, (p: Plan) => string]>).map(([label, f]) => `| ${label} | ${plans.map(f).join(' | ')} |`)
  ]
  return { lines, plans }
}

if (require.main === module) {
  console.log(scalingTables(measuredInputs()).lines.join('\n'))
}
