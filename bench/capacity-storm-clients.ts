/**
 * The reconnect-storm load of bench/capacity.ts, in a process of its own: `count` fastify-chanx clients
 * (plugin/client on `ws`, each with its own JWT in `?token=`) connect to `url`, then wait for the server to
 * drop them all. argv: url count policy, policy one of
 *
 *   fixed        exponential backoff WITHOUT jitter (500 ms × 2^attempt): every client retries at the same instant
 *   jitter       the client's default policy: full jitter below 500 ms × 2^attempt (docs/client.md)
 *   jitter-<ms>  full jitter with `backoff.initialDelay` = <ms>
 *
 * IPC: -> { type: 'open', count } once all are authenticated; <- { cmd: 'storm' } starts the clock (the harness
 * then makes the server drop every socket); -> { type: 'storm', times, retries, stopped, maxAttempt } when
 * every client is back (`times`: ms from the storm command to each client's re-authentication) or after 120 s.
 */
import { WebSocket } from 'ws'
import { createSigner } from 'fast-jwt'
import { ChanxClient, defaultPolicy, type CloseInfo, type Decision, type WebSocketConstructor } from '../plugin/client'
import { SECRET } from './common'

const [url, countText, policyName] = process.argv.slice(2) as [string, string, string]
const count = Number(countText)
const sign = createSigner({ key: SECRET, expiresIn: 3600_000 })

function policyFor (name: string): ((close: CloseInfo) => Decision) | undefined {
  if (name === 'jitter') return undefined
  if (name === 'fixed') return (close) => ({ action: 'reconnect', delay: Math.min(30000, 500 * 2 ** close.attempt) })
  const initialDelay = Number(name.replace(/^jitter-/, ''))
  if (!Number.isFinite(initialDelay)) throw new Error(`unknown policy ${name}`)
  return (close) => defaultPolicy(close, { initialDelay })
}

async function main (): Promise<void> {
  const policy = policyFor(policyName)
  const clients: ChanxClient[] = []
  let origin = 0
  let storming = false
  const times: number[] = []
  let retries = 0
  let stopped = 0
  let maxAttempt = 0
  const done = (): void => {
    process.send!({ type: 'storm', times, retries, stopped, maxAttempt })
  }
  for (let i = 0; i < count; i += 500) {
    const batch: Promise<void>[] = []
    for (let j = i; j < Math.min(count, i + 500); j++) {
      const token = sign({ sub: `user-${j}` }) as string
      const client = new ChanxClient(url, {
        WebSocket: WebSocket as unknown as WebSocketConstructor,
        getToken: () => token,
        refreshBeforeExpiry: 0,
        ...(policy !== undefined ? { policy } : {})
      })
      client.on('open', ({ reconnected }) => {
        if (!reconnected || !storming) return
        times.push(performance.now() - origin)
        if (times.length + stopped === count) done()
      })
      client.on('reconnecting', ({ attempt }) => {
        if (attempt > 1) retries++
        if (attempt > maxAttempt) maxAttempt = attempt
      })
      client.on('closed', () => {
        if (!storming) return
        stopped++
        if (times.length + stopped === count) done()
      })
      clients.push(client)
      batch.push(client.connect())
    }
    await Promise.all(batch)
  }
  process.on('message', (msg: { cmd: string }) => {
    if (msg.cmd === 'storm') {
      origin = performance.now()
      storming = true
      setTimeout(done, 120_000).unref()
    } else if (msg.cmd === 'close') {
      for (const client of clients) client.close()
      setTimeout(() => process.exit(0), 200)
    }
  })
  process.send!({ type: 'open', count: clients.length })
}

main().catch((err: unknown) => {
  process.send!({ type: 'failed', message: (err as Error).message })
  setTimeout(() => process.exit(1), 100)
})
