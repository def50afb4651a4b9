/**
 * The reconnect-storm load of bench/capacity.ts, in a process of its own: `count` sockets, each with its own
 * JWT in `?token=` (as the fastify-chanx client sends it), connect to `url`, then wait for the server to drop
 * them all. The transport is a hand-written upgrade over raw TCP (as bench/clients.ts handshakeLoad), much
 * cheaper than a `ws` client, so the load generator keeps up with a storm; the reconnection decision is the
 * client's own `defaultPolicy` (plugin/client/policy.ts), fed the close as the client would feed it.
 * argv: url count policy, policy one of
 *
 *   fixed        exponential backoff WITHOUT jitter (500 ms × 2^attempt): every client retries at the same instant
 *   jitter       the client's default policy: full jitter below 500 ms × 2^attempt (docs/client.md)
 *   jitter-<ms>  full jitter with `backoff.initialDelay` = <ms>
 *
 * IPC: -> { type: 'open', count } once all are authenticated; <- { cmd: 'storm' } starts the clock (the harness
 * then makes the server drop every socket); -> { type: 'storm', times, retries, stopped, maxAttempt } when
 * every socket is back (`times`: ms from the storm command to each re-authentication) or after 120 s.
 */
import { connect, type Socket } from 'node:net'
import { createSigner } from 'fast-jwt'
import { defaultPolicy, type CloseInfo } from '../plugin/client'
import { SECRET } from './common'

const [url, countText, policyName] = process.argv.slice(2) as [string, string, string]
const count = Number(countText)
const target = new URL(url)
const sign = createSigner({ key: SECRET, expiresIn: 3600_000 })
const LOCAL = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8']
const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const CLOSE_FRAME = Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]) // masked (zero key), code 1000

function delayFor (close: CloseInfo): number {
  if (policyName === 'fixed') return Math.min(30000, 500 * 2 ** close.attempt)
  const initialDelay = policyName === 'jitter' ? undefined : Number(policyName.replace(/^jitter-/, ''))
  const decision = defaultPolicy(close, initialDelay === undefined ? {} : { initialDelay })
  if (decision.action !== 'reconnect') throw new Error(`policy stopped on ${close.code}`)
  return decision.delay
}

let origin = 0
let storming = false
const times: number[] = []
let retries = 0
const stopped = 0 // the default policy never stops on 1012 or 1006; kept for the report shape
let maxAttempt = 0
let opened = 0
let announce: (() => void) | null = null
const done = (): void => { process.send!({ type: 'storm', times, retries, stopped, maxAttempt }) }

/** One socket: dials, authenticates, and redials by the policy whenever it closes. */
function client (i: number): void {
  const request = Buffer.from(`GET ${target.pathname}?token=${sign({ sub: `user-${i}` }) as string} HTTP/1.1\r\nHost: ${target.host}\r\n` +
    `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
  let attempt = 0
  let everOpen = false
  const dial = (): void => {
    const socket: Socket = connect({ port: Number(target.port), host: target.hostname, localAddress: LOCAL[i % LOCAL.length] })
    let buffer: Buffer | null = null
    let open = false
    let closeCode = 1006
    socket.on('connect', () => socket.write(request))
    socket.on('data', (chunk) => {
      if (open) {
        if (chunk[0] === 0x88) { // the server's close frame: answer it and let the socket end
          closeCode = chunk.length >= 4 ? chunk.readUInt16BE(2) : 1005
          socket.end(CLOSE_FRAME)
        }
        return
      }
      buffer = buffer === null ? chunk : Buffer.concat([buffer, chunk])
      const head = buffer.indexOf('\r\n\r\n')
      if (head < 0) return
      if (buffer[9] !== 0x31 || buffer[10] !== 0x30 || buffer[11] !== 0x31) { socket.destroy(); return } // not "101"
      const text = buffer.toString('utf8', head + 4)
      if (!text.includes('"status_code":')) return
      if (!text.includes('"status_code":200')) { socket.destroy(); return }
      open = true
      attempt = 0
      if (!everOpen) {
        everOpen = true
        if (++opened === count) announce?.()
      } else if (storming) {
        times.push(performance.now() - origin)
        if (times.length + stopped === count) done()
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      const info: CloseInfo = { code: open ? closeCode : 1006, reason: '', refusal: null, attempt, wasOpen: everOpen, afterRefresh: false, canRefresh: false }
      if (!everOpen) { setTimeout(dial, 100); return } // the initial fill: just retry
      if (attempt > 0) retries++
      const delay = delayFor(info)
      attempt++
      if (attempt > maxAttempt) maxAttempt = attempt
      setTimeout(dial, delay)
    })
  }
  dial()
}

async function main (): Promise<void> {
  // Fill in batches so the initial connections do not themselves storm the server.
  await new Promise<void>((resolve) => {
    announce = resolve
    let i = 0
    const batch = (): void => {
      for (const end = Math.min(count, i + 500); i < end; i++) client(i)
      if (i < count) setTimeout(batch, 300)
    }
    batch()
  })
  process.on('message', (msg: { cmd: string }) => {
    if (msg.cmd === 'storm') {
      origin = performance.now()
      storming = true
      setTimeout(done, 120_000).unref()
    } else if (msg.cmd === 'close') {
      process.exit(0)
    }
  })
  process.send!({ type: 'open', count })
}

main().catch((err: unknown) => {
  process.send!({ type: 'failed', message: (err as Error).message })
  setTimeout(() => process.exit(1), 100)
})
