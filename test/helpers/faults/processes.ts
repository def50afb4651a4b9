import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { childEnv } from '../child-env'

const ENTRY = join(__dirname, '..', '..', 'fixtures', 'fault-app.ts')

/** Where the app processes find Redis: one redis-server's URL, or a cluster's nodes. */
export type RedisTarget = { url: string } | { cluster: Array<{ host: string, port: number }> }

/** One process of test/fixtures/fault-app.ts: started, SIGKILLed, or closed with SIGTERM (app.close()). */
export class AppProcess {
  private exited: Promise<void>
  private constructor (private readonly child: ChildProcess, readonly port: number) {
    this.exited = child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve()
      : new Promise((resolve) => child.once('exit', () => resolve()))
  }

  get alive (): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  static start (redis: RedisTarget, secret: string, history: object, ms = 30_000): Promise<AppProcess> {
    const env: Record<string, string> = { JWT_SECRET: secret, HISTORY: JSON.stringify(history) }
    if ('url' in redis) env.REDIS_URL = redis.url
    else env.REDIS_CLUSTER = JSON.stringify(redis.cluster)
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY], { env: childEnv(env), stdio: ['pipe', 'pipe', 'inherit'] })
    return new Promise((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`an app process did not listen within ${ms} ms`)) }, ms)
      const onData = (chunk: Buffer): void => {
        out += chunk.toString()
        const match = /listening (\d+)/.exec(out)
        if (match === null) return
        clearTimeout(timer)
        child.stdout!.off('data', onData)
        child.stdout!.resume()
        resolve(new AppProcess(child, Number(match[1])))
      }
      child.stdout!.on('data', onData)
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`an app process exited with ${code} before listening`)) })
    })
  }

  /** SIGKILL, as a crash: nothing is drained. */
  async kill (): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL')
    await this.exited
  }

  /** SIGTERM: app.close(), then exit; SIGKILL after `ms` if it has not exited. Resolves with how long it took. */
  async close (ms = 15_000): Promise<number> {
    const started = Date.now()
    if (this.alive) this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), ms)
    await this.exited
    clearTimeout(timer)
    return Date.now() - started
  }
}

/** The app processes behind the clients: a fixed number of slots, each running one process at a time. */
export class AppFleet {
  readonly slots: Array<AppProcess | null>
  constructor (readonly redis: RedisTarget, readonly secret: string, readonly history: object, size: number) {
    this.slots = new Array(size).fill(null)
  }

  async startAll (): Promise<void> {
    await Promise.all(this.slots.map(async (_, i) => { this.slots[i] = await AppProcess.start(this.redis, this.secret, this.history) }))
  }

  /** The live slots' indexes. */
  live (): number[] {
    const out: number[] = []
    for (let i = 0; i < this.slots.length; i++) if (this.slots[i]?.alive === true) out.push(i)
    return out
  }

  port (slot: number): number {
    return this.slots[slot]?.port ?? 1
  }

  async restart (slot: number): Promise<void> {
    this.slots[slot] = await AppProcess.start(this.redis, this.secret, this.history)
  }

  async stop (): Promise<void> {
    await Promise.all(this.slots.map((p) => p?.kill()))
  }
}
