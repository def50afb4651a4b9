/**
 * Redis-level pub/sub cost for bench/capacity.ts, measured with ioredis directly (no hub): K subscriber
 * connections, one per simulated app process, listen to G group channels named as the hub names them
 * (`chanx:{g:<group>}`, /work/notes/redis-naming.md); a publisher sends ~200-byte envelopes at a fixed rate,
 * round-robin over the groups. Redis CPU comes from `INFO cpu` (used_cpu_user + used_cpu_sys) of every node.
 *
 *   single          one redis-server: SUBSCRIBE / PUBLISH
 *   cluster-sharded 3 primaries: per subscriber one connection per shard, SSUBSCRIBE to the channels that
 *                   shard owns; SPUBLISH to the owner (what a Cluster client does)
 *   cluster-classic the same cluster: subscriber k SUBSCRIBEs on node k mod 3, PUBLISH to the owner;
 *                   Redis Cluster forwards every classic message to every node over the cluster bus
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'

const BIN = process.env.REDIS_SERVER ?? 'redis-server'
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A hub envelope of about 200 bytes: origin id, channel kind, a short chat message. */
export const ENVELOPE = (() => {
  const base = { o: '6f1d2c1e-8a47-4b5e-9c1f-2f7f0b4c9a11', k: 'g', m: { action: 'chat', payload: { user: 'user-123456', text: '' } } }
  const text = JSON.stringify(base)
  base.m.payload.text = 'x'.repeat(Math.max(0, 200 - text.length))
  return JSON.stringify(base)
})()

export const groupChannel = (i: number): string => `chanx:{g:room-${i}}`

function portFree (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A port p with p and its cluster-bus port p + 10000 both free. */
async function clusterPort (taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 15000)
    if (taken.has(port) || taken.has(port + 10000)) continue
    if (await portFree(port) && await portFree(port + 10000)) { taken.add(port); taken.add(port + 10000); return port }
  }
  throw new Error('no free port pair for a cluster node')
}

async function waitPing (port: number): Promise<void> {
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    client.on('error', () => {})
    try {
      await client.connect()
      await client.ping()
      client.disconnect()
      return
    } catch {
      client.disconnect()
      await sleep(50)
    }
  }
  throw new Error(`redis-server on ${port} did not answer`)
}

export interface RedisNodes {
  ports: number[]
  pids: number[]
  cluster: boolean
  stop(): Promise<void>
}

/** `count` redis-servers on loopback (a 3-primary cluster when `cluster`), pinned to `cpu` with taskset. */
export async function startRedis (opts: { cluster: boolean, count: number, cpu: string }): Promise<RedisNodes> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chanx-capacity-'))
  const taken = new Set<number>()
  const children: ChildProcess[] = []
  const ports: number[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) { resolve(); return }
      child.once('exit', () => resolve())
      child.kill('SIGKILL')
    })))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (let i = 0; i < opts.count; i++) {
      const port = await clusterPort(taken)
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
      if (opts.cluster) args.push('--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '5000')
      const child = spawn('taskset', ['-c', opts.cpu, BIN, ...args], { stdio: ['ignore', 'ignore', 'inherit'] })
      children.push(child)
      ports.push(port)
    }
    for (const port of ports) await waitPing(port)
    if (opts.cluster) {
      const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-yes'], { encoding: 'utf8' })
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`)
      const deadline = Date.now() + 20000
      for (const port of ports) {
        const client = new Redis({ port, host: '127.0.0.1' })
        try {
          while (!(await client.cluster('INFO') as string).includes('cluster_state:ok')) {
            if (Date.now() > deadline) throw new Error(`cluster node ${port} not ok within 20 s`)
            await sleep(100)
          }
        } finally {
          client.disconnect()
        }
      }
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { ports, pids: children.map((c) => c.pid!), cluster: opts.cluster, stop }
}

/** used_cpu_user + used_cpu_sys of one node, in microseconds. */
export async function redisCpu (client: Redis): Promise<number> {
  const info = await client.info('cpu')
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1])
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1])
  return (user + sys) * 1e6
}

/** Redis CPU µs per node over `windowMs` with no traffic: the floor a node costs (cluster cron, bus pings). */
export async function idleCpu (nodes: RedisNodes, windowMs: number): Promise<number[]> {
  const admin = nodes.ports.map((port) => new Redis({ port, host: '127.0.0.1' }))
  try {
    const start = await Promise.all(admin.map(redisCpu))
    await sleep(windowMs)
    const end = await Promise.all(admin.map(redisCpu))
    return end.map((c, n) => c - start[n]!)
  } finally {
    for (const c of admin) c.disconnect()
  }
}

export interface PubsubResult {
  mode: string
  groups: number
  subscribers: number
  rate: number
  published: number
  delivered: number
  /** Redis CPU µs over the window, per node, in node order. */
  nodeCpu: number[]
  /** Messages published to each node (the slot owner; for single, the only node). */
  nodePublished: number[]
  /** Redis CPU (all nodes) µs per published message and per delivered message. */
  perPublished: number
  perDelivered: number
}

/**
 * One measurement: `subscribers` simulated processes each listening to all `groups` channels, `rate`
 * envelopes per second for `windowMs` after `warmupMs`.
 */
export async function measurePubsub (nodes: RedisNodes, mode: 'single' | 'cluster-sharded' | 'cluster-classic', opts: { groups: number, subscribers: number, rate: number, warmupMs: number, windowMs: number }): Promise<PubsubResult> {
  const admin = nodes.ports.map((port) => new Redis({ port, host: '127.0.0.1' }))
  const connections: Redis[] = [...admin]
  const open = (port: number): Redis => { const c = new Redis({ port, host: '127.0.0.1' }); connections.push(c); return c }
  try {
    const channels = Array.from({ length: opts.groups }, (_, i) => groupChannel(i))
    // Which node owns each channel's slot.
    const owner: number[] = []
    if (nodes.cluster) {
      const slots = await admin[0]!.cluster('SLOTS') as unknown as Array<[number, number, [string, number, ...unknown[]]]>
      const ranges = slots.map(([from, to, master]) => ({ from, to, node: nodes.ports.indexOf(master[1]) }))
      for (const channel of channels) {
        const slot = await admin[0]!.cluster('KEYSLOT', channel) as number
        owner.push(ranges.find((r) => slot >= r.from && slot <= r.to)!.node)
      }
    } else for (let i = 0; i < channels.length; i++) owner.push(0)

    let delivered = 0
    let counting = false
    const onMessage = (): void => { if (counting) delivered++ }
    for (let k = 0; k < opts.subscribers; k++) {
      if (mode === 'cluster-sharded') {
        for (let n = 0; n < nodes.ports.length; n++) {
          const sub = open(nodes.ports[n]!)
          sub.on('smessage', onMessage)
          // One slot per SSUBSCRIBE (a CROSSSLOT error otherwise); ioredis pipelines them.
          await Promise.all(channels.filter((_, i) => owner[i] === n).map((channel) => sub.ssubscribe(channel)))
        }
      } else {
        const sub = open(nodes.ports[mode === 'single' ? 0 : k % nodes.ports.length]!)
        sub.on('message', onMessage)
        for (let i = 0; i < channels.length; i += 500) await sub.subscribe(...channels.slice(i, i + 500))
      }
    }
    const publishers = nodes.ports.map((port) => open(port))
    await sleep(200)

    const nodePublished = nodes.ports.map(() => 0)
    let published = 0
    const send = (i: number, inWindow: boolean): void => {
      const g = i % opts.groups
      const node = owner[g]!
      const publisher = publishers[node]!
      if (mode === 'cluster-sharded') publisher.spublish(channels[g]!, ENVELOPE).catch(() => {})
      else publisher.publish(channels[g]!, ENVELOPE).catch(() => {})
      if (inWindow) { published++; nodePublished[node]!++ }
    }
    const origin = performance.now()
    const windowStart = origin + opts.warmupMs
    const end = windowStart + opts.windowMs
    const interval = 1000 / opts.rate
    let i = 0
    let cpuStart: number[] = []
    let windowOpen = false
    while (true) {
      const t = performance.now()
      if (!windowOpen && t >= windowStart) {
        cpuStart = await Promise.all(admin.map(redisCpu))
        windowOpen = true
        counting = true
      }
      if (t >= end) break
      const due = Math.floor((t - origin) / interval) + 1
      for (; i < due; i++) send(i, windowOpen)
      await sleep(Math.max(0, origin + i * interval - performance.now()))
    }
    const cpuEnd = await Promise.all(admin.map(redisCpu))
    // Let the deliveries of the window's last messages arrive before counting stops.
    await Promise.all(publishers.map((p) => p.ping()))
    await sleep(300)
    counting = false
    const nodeCpu = cpuEnd.map((c, n) => c - cpuStart[n]!)
    const total = nodeCpu.reduce((a, b) => a + b, 0)
    return {
      mode,
      groups: opts.groups,
      subscribers: opts.subscribers,
      rate: opts.rate,
      published,
      delivered,
      nodeCpu,
      nodePublished,
      perPublished: total / published,
      perDelivered: total / Math.max(1, delivered)
    }
  } finally {
    for (const c of connections) c.disconnect()
  }
}
