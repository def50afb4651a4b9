import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer, connect } from 'node:net'

const BIN = process.env.REDIS_SERVER ?? 'redis-server'

/**
 * Why the Redis tests cannot run here, or false when they can. Without redis-server they are skipped
 * with this reason, except on CI (process.env.CI), where a missing server is a failure.
 */
export function redisSkipReason (): string | false {
  const probe = spawnSync(BIN, ['--version'], { encoding: 'utf8' })
  if (probe.error === undefined && probe.status === 0) return false
  const reason = `${BIN} not found (${probe.error?.message ?? probe.stderr}); install redis-server to run the Redis channel-layer tests`
  if (process.env.CI) throw new Error(`CI is set but ${reason}`)
  console.log(`# skipping Redis tests: ${reason}`)
  return reason
}

export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function ping (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')))
  })
}

/** A redis-server on a free loopback port, no persistence; stop() it in teardown. */
export class RedisServer {
  readonly port: number
  private child: ChildProcess | null = null

  private constructor (port: number) {
    this.port = port
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  static async start (port?: number): Promise<RedisServer> {
    const server = new RedisServer(port ?? await freePort())
    await server.launch()
    return server
  }

  private async launch (): Promise<void> {
    const child = spawn(BIN, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'ignore', 'inherit']
    })
    this.child = child
    const deadline = Date.now() + 5000
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode} on port ${this.port}`)
      if (await ping(this.port)) return
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    child.kill('SIGKILL')
    throw new Error(`redis-server did not answer PING on port ${this.port} within 5 s`)
  }

  /** Kill the server abruptly (as a crash would) and wait until it is gone. */
  async stop (): Promise<void> {
    const child = this.child
    this.child = null
    if (child === null || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }

  /** Freeze the server (SIGSTOP): connections stay open and commands get no answer, as a hung Redis. */
  pause (): void {
    this.child?.kill('SIGSTOP')
  }

  /** Thaw a paused server (SIGCONT). */
  resume (): void {
    this.child?.kill('SIGCONT')
  }

  /** Start again on the same port. */
  async restart (): Promise<void> {
    await this.stop()
    await this.launch()
  }
}
