import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { freePort } from './redis'

const SERVER = process.env.REDIS_SERVER ?? 'redis-server'
const CLI = process.env.REDIS_CLI ?? 'redis-cli'

/**
 * Why the Redis Cluster tests cannot run here, or false when they can: they need redis-server 7 (sharded
 * pub/sub) and redis-cli. Skipped with the reason, except on CI, where it is a failure.
 */
export function redisClusterSkipReason (): string | false {
  let reason: string | false = false
  const server = spawnSync(SERVER, ['--version'], { encoding: 'utf8' })
  const cli = spawnSync(CLI, ['--version'], { encoding: 'utf8' })
  if (server.error !== undefined || server.status !== 0) reason = `${SERVER} not found (${server.error?.message ?? server.stderr})`
  else if (cli.error !== undefined || cli.status !== 0) reason = `${CLI} not found (${cli.error?.message ?? cli.stderr})`
  else {
    const major = Number(/v=(\d+)/.exec(server.stdout)?.[1] ?? 0)
    if (major < 7) reason = `${SERVER} is version ${major}; sharded pub/sub needs Redis 7`
  }
  if (reason === false) return false
  reason += '; install redis-server and redis-tools (Redis 7) to run the Redis Cluster tests'
  if (process.env.CI) throw new Error(`CI is set but ${reason}`)
  console.log(`# skipping Redis Cluster tests: ${reason}`)
  return reason
}

function isFree (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** One command on one node through redis-cli; its raw output. */
function cli (port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLI, ['-h', '127.0.0.1', '-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.on('error', reject)
    child.on('exit', (code) => code === 0 ? resolve(out) : reject(new Error(`redis-cli ${args.join(' ')} exited ${code}: ${out}`)))
  })
}

async function until (what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${what} within ${ms} ms`)
}

interface NodeLine { id: string, port: number, primary: boolean, failed: boolean, primaryId: string | null, slots: Array<[number, number]> }

/**
 * A Redis Cluster of 3 primaries and (by default) 3 replicas (redis-server --cluster-enabled, on free loopback ports,
 * no persistence, node timeout 1 s so a killed primary is replaced in a few seconds). stop() it in teardown.
 */
export class RedisCluster {
  private readonly dir: string
  private readonly children = new Map<number, ChildProcess>()

  private constructor (readonly ports: number[]) {
    this.dir = mkdtempSync(join(tmpdir(), 'chanx-cluster-'))
  }

  /** The startup nodes for ioredis: every node, so any survivor can answer CLUSTER SLOTS. */
  get nodes (): Array<{ host: string, port: number }> {
    return this.ports.map((port) => ({ host: '127.0.0.1', port }))
  }

  /** Start 3 primaries, each with `replicas` replicas (default 1; 0 for a cluster without failover). */
  static async start (options: { replicas?: 0 | 1 } = {}): Promise<RedisCluster> {
    const replicas = options.replicas ?? 1
    const ports: number[] = []
    while (ports.length < 3 * (1 + replicas)) {
      const port = await freePort()
      // The cluster bus listens on port + 10000: both must be free and below 65536.
      if (port < 55000 && !ports.includes(port) && await isFree(port + 10000)) ports.push(port)
    }
    const cluster = new RedisCluster(ports)
    try {
      await Promise.all(ports.map((port) => cluster.launch(port)))
      await cli(ports[0], '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes')
      await until('the cluster did not reach cluster_state:ok', 20_000, async () => {
        for (const port of ports) if (!(await cli(port, 'cluster', 'info')).includes('cluster_state:ok')) return false
        return true
      })
      await until('the replicas did not sync', 20_000, async () => {
        const lines = await cluster.topology()
        for (const line of lines.filter((l) => !l.primary)) {
          if (!(await cli(line.port, 'info', 'replication')).includes('master_link_status:up')) return false
        }
        return lines.filter((l) => l.primary).length === 3
      })
    } catch (err) {
      await cluster.stop()
      throw err
    }
    return cluster
  }

  private async launch (port: number): Promise<void> {
    const child = spawn(SERVER, [
      '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', join(this.dir, `nodes-${port}.conf`), '--cluster-node-timeout', '1000',
      '--appendonly', 'no', '--save', '', '--dir', this.dir
    ], { stdio: ['ignore', 'ignore', 'inherit'] })
    this.children.set(port, child)
    await until(`redis-server did not answer PING on port ${port}`, 5000, async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode} on port ${port}`)
      return (await cli(port, 'ping')).startsWith('PONG')
    })
  }

  /** CLUSTER NODES as a live node sees it. */
  async topology (): Promise<NodeLine[]> {
    const alive = [...this.children.entries()].find(([, c]) => c.exitCode === null && c.signalCode === null)
    if (alive === undefined) throw new Error('no live node')
    return (await cli(alive[0], 'cluster', 'nodes')).trim().split('\n').map((line) => {
      const [id, address, flags, primaryId, , , , , ...slots] = line.split(' ')
      return {
        id,
        port: Number(/:(\d+)@/.exec(address)![1]),
        primary: flags.includes('master'),
        failed: flags.includes('fail'),
        primaryId: primaryId === '-' ? null : primaryId,
        slots: slots.filter((s) => !s.startsWith('[')).map((s) => {
          const [from, to] = s.split('-').map(Number)
          return [from, to ?? from] as [number, number]
        })
      }
    })
  }

  /** The port of the live primary that owns `key`'s slot (a pub/sub channel name hashes like a key). */
  async primaryOf (key: string): Promise<number> {
    const slot = Number((await cli(this.livePort(), 'cluster', 'keyslot', key)).trim())
    const owner = (await this.topology()).find((l) => l.primary && !l.failed && l.slots.some(([a, b]) => slot >= a && slot <= b))
    if (owner === undefined) throw new Error(`no live primary owns slot ${slot}`)
    return owner.port
  }

  private livePort (): number {
    for (const [port, child] of this.children) if (child.exitCode === null && child.signalCode === null) return port
    throw new Error('no live node')
  }

  /** The live primaries' ports. */
  async primaries (): Promise<number[]> {
    return (await this.topology()).filter((l) => l.primary && !l.failed).map((l) => l.port)
  }

  /** Run a command on one node through redis-cli (e.g. `pubsub shardnumsub <channel>`). */
  command (port: number, ...args: string[]): Promise<string> {
    return cli(port, ...args)
  }

  /** SIGKILL one node, as a crash would, and wait until it is gone. */
  async kill (port: number): Promise<void> {
    const child = this.children.get(port)
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }

  /**
   * Kill the primary on `port` (SIGKILL) and wait until one of its replicas has been promoted and every
   * live node says cluster_state:ok. Resolves with the promoted node's port.
   */
  async failPrimary (port: number, ms = 20_000): Promise<number> {
    const before = new Set(await this.primaries())
    await this.kill(port)
    let promoted = 0
    await until(`no replica replaced the primary on ${port}`, ms, async () => {
      const now = await this.primaries()
      const heir = now.find((p) => !before.has(p))
      if (heir === undefined || now.includes(port)) return false
      for (const [p, child] of this.children) {
        if (child.exitCode !== null || child.signalCode !== null) continue
        if (!(await cli(p, 'cluster', 'info')).includes('cluster_state:ok')) return false
      }
      promoted = heir
      return true
    })
    return promoted
  }

  async stop (): Promise<void> {
    await Promise.all([...this.children.keys()].map((port) => this.kill(port)))
    rmSync(this.dir, { recursive: true, force: true })
  }
}
