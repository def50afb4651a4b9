import { fork, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { childEnv } from './child-env'

export interface PeerEvent { event: string, member?: string, data?: string, code?: number, reason?: string, name?: string, payload?: unknown, msg?: string }

/** A ChannelHub in a child process (test/fixtures/channel-peer.ts), driven over IPC. */
export class Peer {
  readonly events: PeerEvent[] = []
  private readonly child: ChildProcess
  private readonly replies = new Map<number, { resolve (v: unknown): void, reject (e: Error): void }>()
  private nextId = 0
  private waiters: Array<() => void> = []

  private constructor (child: ChildProcess) {
    this.child = child
    child.on('message', (msg: any) => {
      if (typeof msg.reply === 'number') {
        const pending = this.replies.get(msg.reply)
        this.replies.delete(msg.reply)
        if (msg.ok) pending?.resolve(msg.value)
        else pending?.reject(Object.assign(new Error(msg.error), { code: msg.code }))
        return
      }
      this.events.push(msg)
      for (const wake of this.waiters.splice(0)) wake()
    })
  }

  static start (redisUrl: string): Promise<Peer> {
    const child = fork(join(__dirname, '..', 'fixtures', 'channel-peer.ts'), [], {
      execArgv: ['--import', 'tsx'],
      env: childEnv({ REDIS_URL: redisUrl }),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    })
    const peer = new Peer(child)
    return peer.waitFor((e) => e.event === 'ready' || e.event === 'failed', 15000).then((e) => {
      if (e.event === 'failed') throw new Error(`peer failed to start: ${e.code} ${(e as any).error}`)
      return peer
    })
  }

  call<T = unknown> (op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.nextId
    return new Promise<T>((resolve, reject) => {
      this.replies.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.child.send({ id, op, args })
    })
  }

  /** The first event (already seen or still to come) matching `match`, within `ms`. */
  async waitFor (match: (e: PeerEvent) => boolean, ms = 5000): Promise<PeerEvent> {
    const deadline = Date.now() + ms
    for (;;) {
      const found = this.events.find(match)
      if (found !== undefined) return found
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`peer: no matching event within ${ms} ms; saw ${JSON.stringify(this.events.slice(-5))}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  /** Messages that reached `member`, parsed. */
  messagesOf (member: string): Array<Record<string, unknown>> {
    return this.events.filter((e) => e.event === 'message' && e.member === member).map((e) => JSON.parse(e.data!))
  }

  async stop (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000)
    this.call('close').catch(() => {})
    await exited
    clearTimeout(timer)
  }
}
