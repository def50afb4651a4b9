import { RedisServer } from '../redis'
import { RedisCluster } from '../redis-cluster'
import { FaultClient } from './clients'
import { FAULTS, prng, type FaultClass, type FaultTarget } from './faults'
import { check, type Row, type Violation } from './oracle'
import { AppFleet } from './processes'
import { Publisher } from './publisher'
import { describe, table } from './report'

export interface FaultRunOptions {
  /** One redis-server, or a Redis Cluster of 3 primaries and 3 replicas. */
  topology: 'redis' | 'cluster'
  seed: number
  /**
   * The faults, in order; or faults drawn by the seed from `classes` until at least `count` ran, at least
   * `durationMs` passed and at least `messages` were published (all three).
   */
  schedule: FaultClass[] | { count: number, classes: FaultClass[], durationMs?: number, messages?: number }
  /** Messages a second, all streams together. */
  rate: number
  /** Time between faults, drawn between half and one and a half of it. */
  gapMs: number
  clients?: number
  groups?: number
  users?: number
  /** Streams of broadcasts to several groups at once (default one: `m:g0,g1`). */
  multi?: string[]
  processes?: number
  /** Per-stream history (`size` messages, `maxAge` ms). */
  history?: { size: number, maxAge: number }
  /** How long the end waits for every client to catch up. */
  settleMs?: number
  log?: (line: string) => void
}

export interface FaultRunResult {
  rows: Map<string, Row>
  faults: Map<string, number>
  violations: Violation[]
  table: string
  summary: string
  published: number
  /** Deliveries checked (live and replayed). */
  delivered: number
}

const SECRET = 'a-fault-harness-secret-of-32-chars!!'
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * One seeded run: start Redis (or a cluster), the app processes, the clients through their proxies and the
 * publisher; inject the faults one after the other while messages flow; stop publishing; wait for every
 * client to catch up (bounded); check the contract (oracle.ts) and build the table (report.ts).
 */
export async function runFaults (options: FaultRunOptions): Promise<FaultRunResult> {
  const log = options.log ?? (() => {})
  const random = prng(options.seed)
  const clientCount = options.clients ?? 6
  const groupCount = options.groups ?? 4
  const userCount = options.users ?? 3
  const history = options.history ?? { size: 10_000, maxAge: 60_000 }
  const multi = options.multi ?? ['m:g0,g1']
  const redis = options.topology === 'redis' ? await RedisServer.start() : null
  const cluster = options.topology === 'cluster' ? await RedisCluster.start({ replicas: 1 }) : null
  const fleet = new AppFleet(redis !== null ? { url: redis.url } : { cluster: cluster!.nodes }, SECRET, history, options.processes ?? 3)
  const clients: FaultClient[] = []
  let publisher: Publisher | null = null
  try {
    await fleet.startAll()
    for (let i = 0; i < clientCount; i++) {
      const client = new FaultClient(i, `u${i % userCount}`, [`g${i % groupCount}`, `g${(i + 1) % groupCount}`], i % fleet.slots.length, multi)
      clients.push(client)
      await client.start(fleet.port(client.slot), SECRET, random, () => publisher?.phase ?? 'start')
    }
    const streams = [...Array.from({ length: groupCount }, (_, i) => `g:g${i}`), ...Array.from({ length: userCount }, (_, i) => `u:u${i}`), ...multi]
    publisher = new Publisher(fleet, streams, options.rate, random)
    publisher.start()
    const target: FaultTarget = { fleet, clients, redis, cluster, random, promoted: new Set() }
    const schedule = options.schedule
    const faults = new Map<string, number>()
    const started = Date.now()
    await delay(options.gapMs / 2)
    for (let i = 0; ; i++) {
      let name: FaultClass
      if (Array.isArray(schedule)) {
        if (i >= schedule.length) break
        name = schedule[i]!
      } else {
        if (i >= schedule.count && Date.now() - started >= (schedule.durationMs ?? 0) && publisher.count >= (schedule.messages ?? 0)) break
        name = schedule.classes[Math.floor(random() * schedule.classes.length)]!
      }
      publisher.phase = name
      let what: string
      try {
        what = await FAULTS[name](target)
      } catch (err) {
        // A fault that could not be completed (a process that did not start again, a failover that did not
        // finish in time) is reported and the run goes on: its table still says what the clients saw.
        what = `skipped: it failed: ${(err as Error).message}`
        for (const slot of fleet.slots.keys()) if (fleet.slots[slot]?.alive !== true) await fleet.restart(slot).catch(() => {})
      }
      if (!what.startsWith('skipped')) faults.set(name, (faults.get(name) ?? 0) + 1)
      log(`# fault ${i + 1} (${name}) at ${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`)
      await delay(options.gapMs * (0.5 + random()))
    }
    await publisher.stop()
    await settle(clients, publisher, options.settleMs ?? 15_000)
    const { rows, violations } = check(clients, publisher.records, ['start', ...Object.keys(FAULTS)])
    let delivered = 0
    for (const row of rows.values()) delivered += row.live + row.replayed
    const result: FaultRunResult = {
      rows,
      faults,
      violations,
      table: table(rows, faults),
      summary: describe(violations),
      published: publisher.count,
      delivered
    }
    log(`# ${options.topology}, seed ${options.seed}: ${result.published} messages, ${delivered} deliveries, ${[...faults.values()].reduce((a, b) => a + b, 0)} faults in ${((Date.now() - started) / 1000).toFixed(0)} s`)
    return result
  } finally {
    await publisher?.stop()
    await Promise.all(clients.map((c) => c.stop()))
    await fleet.stop()
    await redis?.stop()
    await cluster?.stop()
  }
}

/**
 * Wait until every client is open and holds every message of its streams that was published after it
 * first opened and resolved, or until `ms` passed (what is still missing then is for the oracle to judge).
 */
async function settle (clients: FaultClient[], publisher: Publisher, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  const caughtUp = (client: FaultClient): boolean => {
    if (!client.open) return false
    for (const stream of client.streams) {
      const list = publisher.records.get(stream)!
      let last = 0
      for (let n = list.length; n >= 1; n--) {
        const record = list[n - 1]!
        if (record.outcome === 'ok' && record.start >= client.firstOpen) { last = n; break }
      }
      if (last === 0) continue
      let got = false
      for (let i = client.seen.length - 1; i >= 0 && !got; i--) {
        const seen = client.seen[i]!
        if (seen.kind === 'message' && seen.stream === stream && seen.n >= last) got = true
      }
      if (!got) return false
    }
    return true
  }
  while (Date.now() < deadline && !clients.every(caughtUp)) await delay(100)
}
