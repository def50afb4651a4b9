import { spawn } from 'node:child_process'
import type { RedisServer } from '../redis'
import type { RedisCluster } from '../redis-cluster'
import type { FaultClient } from './clients'
import type { AppFleet } from './processes'

/** A small seeded PRNG (mulberry32): the same seed gives the same faults, on the same targets. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** What a fault acts on. */
export interface FaultTarget {
  fleet: AppFleet
  clients: FaultClient[]
  redis: RedisServer | null
  cluster: RedisCluster | null
  random: () => number
  /** Primaries promoted by a failover in this run (they have no replica left to fail over to). */
  promoted: Set<number>
}

const CLI = process.env.REDIS_CLI ?? 'redis-cli'
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** One command on one node through redis-cli, bounded to 5 s; its output (an error's text if it failed). */
export function redisCli (port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(CLI, ['-h', '127.0.0.1', '-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.on('error', (err) => { clearTimeout(timer); resolve(err.message) })
    child.on('exit', () => { clearTimeout(timer); resolve(out.trim()) })
  })
}

function pick<T> (random: () => number, items: T[]): T {
  return items[Math.floor(random() * items.length)]!
}

function lastOpen (client: FaultClient): Extract<FaultClient['seen'][number], { kind: 'open' }> | undefined {
  for (let i = client.seen.length - 1; i >= 0; i--) {
    const seen = client.seen[i]!
    if (seen.kind === 'open') return seen
  }
  return undefined
}

/** Every Redis node that holds data or subscribers: the one server, or the cluster's live primaries. */
async function redisNodes (target: FaultTarget): Promise<number[]> {
  if (target.redis !== null) return [target.redis.port]
  return await target.cluster!.primaries()
}

/** New connections of the clients on `slot` go to other live slots (as a load balancer that took it out). */
function moveOff (target: FaultTarget, slot: number): void {
  const others = target.fleet.live().filter((s) => s !== slot)
  if (others.length === 0) return
  for (const client of target.clients) {
    if (client.slot !== slot) continue
    client.slot = pick(target.random, others)
    client.proxy.target = target.fleet.port(client.slot)
  }
}

/** After `slot` came back: the clients it served first send their new connections there again. */
function moveBack (target: FaultTarget, slot: number): void {
  for (const client of target.clients) {
    if (client.id % target.fleet.slots.length !== slot) continue
    client.slot = slot
    client.proxy.target = target.fleet.port(slot)
  }
}

/**
 * The fault classes. Each runs one fault and resolves with what it did, once the system has it (a
 * restarted process listens again, a failover is done); the clients' recovery is left to them.
 */
export const FAULTS = {
  /**
   * One client's TCP connection is reset (its proxy cuts) and refused for 300–800 ms, so it misses
   * messages; it reconnects and resumes on the same process.
   */
  async cut (target: FaultTarget): Promise<string> {
    const client = pick(target.random, target.clients)
    const away = 300 + Math.floor(target.random() * 500)
    client.proxy.refusing = true
    client.proxy.cut()
    await delay(away)
    client.proxy.refusing = false
    return `cut client ${client.id} for ${away} ms`
  },
  /** One app process is SIGKILLed; its clients' proxies point to another process, and it is started again. */
  async sigkill (target: FaultTarget): Promise<string> {
    const live = target.fleet.live()
    if (live.length < 2) return 'skipped: fewer than 2 live processes'
    const slot = pick(target.random, live)
    moveOff(target, slot)
    await target.fleet.slots[slot]!.kill()
    await target.fleet.restart(slot)
    moveBack(target, slot)
    return `SIGKILLed process ${slot} and started it again`
  },
  /** Each process in turn: taken out of the proxies, closed with app.close() (SIGTERM), started again. */
  async rolling (target: FaultTarget): Promise<string> {
    const took: number[] = []
    for (let slot = 0; slot < target.fleet.slots.length; slot++) {
      moveOff(target, slot)
      took.push(await target.fleet.slots[slot]!.close())
      await target.fleet.restart(slot)
      moveBack(target, slot)
    }
    return `rolling restart; app.close() took ${took.join(', ')} ms`
  },
  /** Redis drops every pub/sub connection (`CLIENT KILL TYPE pubsub`): the processes' subscribers reconnect. */
  async pubsub (target: FaultTarget): Promise<string> {
    const nodes = await redisNodes(target)
    const killed = await Promise.all(nodes.map((port) => redisCli(port, 'CLIENT', 'KILL', 'TYPE', 'pubsub')))
    return `CLIENT KILL TYPE pubsub on ${nodes.join(', ')}: ${killed.join(', ')}`
  },
  /** The one redis-server is SIGKILLed and started again, empty (its history is gone). */
  async 'redis-restart' (target: FaultTarget): Promise<string> {
    if (target.redis === null) return 'skipped: not on one redis-server'
    await target.redis.restart()
    return `restarted redis-server on ${target.redis.port}`
  },
  /** A cluster primary is SIGKILLed; a replica takes over. */
  async failover (target: FaultTarget): Promise<string> {
    if (target.cluster === null) return 'skipped: not on a cluster'
    const candidates = (await target.cluster.primaries()).filter((p) => !target.promoted.has(p))
    if (candidates.length === 0) return 'skipped: every primary left has no replica'
    const port = pick(target.random, candidates)
    const started = Date.now()
    const heir = await target.cluster.failPrimary(port)
    target.promoted.add(heir)
    return `SIGKILLed primary ${port}; ${heir} took over in ${Date.now() - started} ms`
  },
  /**
   * History reads fail: two clients are cut and kept away for 1 s while messages flow, then Redis stops
   * running scripts (`CLIENT PAUSE 4000 WRITE`: longer than the 3 s read timeout; pub/sub goes on, so the
   * handshake's subscriptions do not wait) and they come back, so their resumes' reads time out
   * (`unavailable`). Then they are cut for 1 s once more: that resume must still cover every stream.
   */
  async 'read-fail' (target: FaultTarget): Promise<string> {
    const cut = [...new Set([pick(target.random, target.clients), pick(target.random, target.clients)])]
    const away = async (): Promise<void> => {
      for (const client of cut) { client.proxy.refusing = true; client.proxy.cut() }
      await delay(1000)
    }
    await away()
    const nodes = await redisNodes(target)
    const paused = await Promise.all(nodes.map((port) => redisCli(port, 'CLIENT', 'PAUSE', '4000', 'WRITE')))
    for (const client of cut) client.proxy.refusing = false
    await delay(4500)
    const outcomes = cut.map((c) => `${c.id}: ${JSON.stringify(lastOpen(c)?.recovery ?? null)}`)
    await away()
    for (const client of cut) client.proxy.refusing = false
    return `cut clients ${cut.map((c) => c.id).join(', ')} for 1 s, then paused ${nodes.join(', ')} for 4 s (${paused.join(', ')}); resumed ${outcomes.join('; ')}; cut them for 1 s again`
  }
} satisfies Record<string, (target: FaultTarget) => Promise<string>>

export type FaultClass = keyof typeof FAULTS
