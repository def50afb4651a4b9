import { createHmac } from 'node:crypto'
import WebSocket from 'ws'
import { createClient, type ChanxClient, type RecoveryInfo } from '../../../plugin/client'
import { TcpProxy } from '../recovery'

/** What one client saw, in the order it saw it: numbered messages, opens (with their recovery), closes. */
export type Seen =
  | { kind: 'message', stream: string, n: number, connection: number, groups: string[] }
  | { kind: 'open', connection: number, at: number, recovery: RecoveryInfo | null, phase: string }
  | { kind: 'close', code: number, phase: string }

/** An HS256 JWT for `sub`, as @fastify/jwt checks it with `secret`. */
export function token (secret: string, sub: string): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, iat: Math.floor(Date.now() / 1000) })}`
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`
}

/**
 * A real fastify-chanx/client through its own TcpProxy, on the route `/ws/<groups>` as `user`: the streams
 * it should see are its groups (`g:<group>`), its user's (`u:<user>`) and the broadcasts to several groups
 * that name one of its groups (`m:<group>,<group>`: one copy each). It reconnects after every close,
 * 50–250 ms later, and records everything into `seen`.
 */
export class FaultClient {
  readonly seen: Seen[] = []
  readonly streams: string[]
  client!: ChanxClient
  proxy!: TcpProxy
  /** When it first opened: messages published before may or may not reach it. */
  firstOpen = Infinity
  connection = -1

  /** `multi`: streams of broadcasts to several groups at once (`m:a,b`); the client is in those that name one of its groups. */
  constructor (readonly id: number, readonly user: string, readonly groups: string[], public slot: number, multi: string[] = []) {
    this.streams = [...groups.map((g) => 'g:' + g), 'u:' + user,
      ...multi.filter((m) => m.slice(2).split(',').some((g) => groups.includes(g)))]
  }

  /** `phase`: the fault class running now, recorded with each open and close. */
  async start (target: number, secret: string, random: () => number, phase: () => string = () => 'start'): Promise<void> {
    this.proxy = await new TcpProxy(target).start()
    this.client = createClient(`ws://127.0.0.1:${this.proxy.port}/ws/${this.groups.join(',')}`, {
      WebSocket: WebSocket as never,
      getToken: () => token(secret, this.user),
      backoff: { maxPerMinute: 100_000 },
      policy: (close) => {
        this.seen.push({ kind: 'close', code: close.code, phase: phase() })
        return { action: 'reconnect', delay: 50 + Math.floor(random() * 200) }
      }
    })
    this.client.on('open', (info) => {
      const at = Date.now()
      if (this.firstOpen === Infinity) this.firstOpen = at
      this.seen.push({ kind: 'open', connection: ++this.connection, at, recovery: info.recovery ?? null, phase: phase() })
    })
    this.client.on('message', (message) => {
      const { payload, chanx_pos: positions } = message as { payload?: { s?: unknown, n?: unknown }, chanx_pos?: Record<string, unknown> }
      if (typeof payload?.s === 'string' && typeof payload.n === 'number') {
        // The groups whose position the copy carries: on a Cluster, the group that delivered it.
        const groups = positions !== null && typeof positions === 'object' ? Object.keys(positions) : []
        this.seen.push({ kind: 'message', stream: payload.s, n: payload.n, connection: this.connection, groups })
      }
    })
    await this.client.connect()
  }

  get open (): boolean {
    return this.client.state === 'open'
  }

  async stop (): Promise<void> {
    this.client?.close()
    await this.proxy?.close()
  }
}
