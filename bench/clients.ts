/**
 * Load generators for bench/run.ts, all in the harness process (pinned to core 1). Every generator offers a
 * fixed rate from a schedule and times each operation from its *scheduled* start, so a server that falls
 * behind shows it in the latency instead of slowing the offered load (no coordinated omission).
 */
import { connect, type Socket } from 'node:net'
import { WebSocket } from 'ws'

export const now = (): number => performance.now()

/** Loopback source addresses, rotated so tens of thousands of connections do not run out of ports. */
const LOCAL = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8']

export interface Window {
  /** performance.now() when the measurement window opens and closes. */
  start: number
  end: number
}

export interface LoadResult {
  /** Operations completed inside the window. */
  completed: number
  /** Operations that failed or got an unexpected answer inside the window. */
  failed: number
  /** Latencies (ms) of operations scheduled inside the window. */
  latencies: number[]
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Runs `fire(i, scheduled)` at `rate` per second from now until `until`, in catch-up batches (1 ms timer).
 * Stops offering when `inFlight()` passes `maxInFlight` (the server cannot keep up: reported as failures).
 */
async function schedule (rate: number, until: number, fire: (scheduled: number) => boolean): Promise<number> {
  const origin = now()
  const interval = 1000 / rate
  let i = 0
  let skipped = 0
  while (true) {
    const t = now()
    if (t >= until) break
    const due = Math.floor((t - origin) / interval) + 1
    for (; i < due; i++) if (!fire(origin + i * interval)) skipped++
    await sleep(Math.max(0, origin + i * interval - now()))
  }
  return skipped
}

// ---------------------------------------------------------------------------------------------------------
// Handshakes over raw TCP: a hand-written upgrade request, read the 101 and the first text frame (the
// authentication message), answer a masked close frame and half-close. Much cheaper than a `ws` client.

const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const CLOSE_FRAME = Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]) // masked (zero key), code 1000

/** A masked text frame with a zero masking key (the payload goes out as is), under 126 bytes. */
function textFrame (text: string): Buffer {
  const payload = Buffer.from(text)
  if (payload.length > 125) throw new Error('textFrame: payload over 125 bytes')
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload])
}

/** The text of the unmasked server frame at `offset`, and where the next one starts; null while incomplete. */
function readFrame (buffer: Buffer, offset: number): { text: string, next: number } | null {
  if (buffer.length < offset + 2) return null
  let length = buffer[offset + 1]! & 0x7f
  let start = offset + 2
  if (length === 126) {
    if (buffer.length < offset + 4) return null
    length = buffer.readUInt16BE(offset + 2)
    start = offset + 4
  } else if (length === 127) {
    if (buffer.length < offset + 10) return null
    length = Number(buffer.readBigUInt64BE(offset + 2))
    start = offset + 10
  }
  if (buffer.length < start + length) return null
  return { text: buffer.toString('utf8', start, start + length), next: start + length }
}

/**
 * `reply`: a text frame sent when the first frame arrives, the second frame then being the one checked
 * (Socket.IO: engine.io's OPEN, the client's CONNECT packet, the server's CONNECT or CONNECT_ERROR).
 */
export async function handshakeLoad (opts: { port: number, path: string, cookie: string, expect: string, reply?: string, rate: number, window: Window, maxInFlight: number }): Promise<LoadResult> {
  const request = Buffer.from(`GET ${opts.path} HTTP/1.1\r\nHost: 127.0.0.1:${opts.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\nCookie: ${opts.cookie}\r\n\r\n`)
  const reply = opts.reply !== undefined ? textFrame(opts.reply) : null
  const result: LoadResult = { completed: 0, failed: 0, latencies: [] }
  let inFlight = 0
  let n = 0
  const settle = (scheduled: number, ok: boolean): void => {
    inFlight--
    const t = now()
    if (t < opts.window.start || t >= opts.window.end) return
    if (ok) result.completed++
    else result.failed++
    if (scheduled >= opts.window.start) result.latencies.push(t - scheduled)
  }
  const fire = (scheduled: number): boolean => {
    if (inFlight >= opts.maxInFlight) {
      if (scheduled >= opts.window.start && scheduled < opts.window.end) result.failed++
      return false
    }
    inFlight++
    const socket: Socket = connect({ port: opts.port, host: '127.0.0.1', localAddress: LOCAL[n++ % LOCAL.length] })
    socket.setNoDelay(true)
    let buffer: Buffer | null = null
    let done = false
    /** Where the next unread frame starts (after the response head), or -1 before the head is complete. */
    let offset = -1
    let frames = 0
    const finish = (ok: boolean): void => {
      if (done) return
      done = true
      settle(scheduled, ok)
      if (ok) { socket.write(CLOSE_FRAME); socket.end() } else socket.destroy()
    }
    socket.on('connect', () => socket.write(request))
    socket.on('data', (chunk) => {
      if (done) return
      buffer = buffer === null ? chunk : Buffer.concat([buffer, chunk])
      if (offset < 0) {
        const head = buffer.indexOf('\r\n\r\n')
        if (head < 0) return
        if (buffer[9] !== 0x31 || buffer[10] !== 0x30 || buffer[11] !== 0x31) { finish(false); return } // "101"
        offset = head + 4
      }
      let frame = readFrame(buffer, offset)
      if (frame !== null && ++frames === 1 && reply !== null) {
        socket.write(reply)
        offset = frame.next
        frame = readFrame(buffer, offset)
        if (frame !== null) frames++
      }
      if (frame !== null) finish(frame.text.includes(opts.expect))
    })
    socket.on('error', () => finish(false))
    socket.on('close', () => finish(false))
    return true
  }
  await schedule(opts.rate, opts.window.end, fire)
  const deadline = now() + 2000
  // eslint-disable-next-line no-unmodified-loop-condition -- the socket callbacks decrement inFlight while this loop sleeps
  while (inFlight > 0 && now() < deadline) await sleep(10)
  return result
}

// ---------------------------------------------------------------------------------------------------------
// Message round trips over `ws` client connections, round-robin; every frame gets exactly one reply, in
// order per connection, so each reply is matched to its frame by a per-connection FIFO of scheduled times.

/**
 * `connect`: a frame to send when the first message arrives (Socket.IO's CONNECT packet after engine.io's
 * OPEN); the client is open when the next message arrives and includes `waitFor` (default `40{`, Socket.IO's
 * CONNECT answer). Without it, open on 'open', or on a first message that includes `waitFor`.
 */
export async function openClients (url: string, count: number, opts: { cookie?: string, waitFor?: string, batch?: number, connect?: string } = {}): Promise<WebSocket[]> {
  const clients: WebSocket[] = []
  const batch = opts.batch ?? 250
  for (let i = 0; i < count; i += batch) {
    const pending: Promise<void>[] = []
    for (let j = i; j < Math.min(count, i + batch); j++) {
      const ws = new WebSocket(url, {
        perMessageDeflate: false,
        localAddress: LOCAL[j % LOCAL.length],
        headers: opts.cookie !== undefined ? { cookie: opts.cookie } : {}
      })
      clients.push(ws)
      pending.push(new Promise((resolve, reject) => {
        ws.once('error', reject)
        const expect = (expected: string): void => {
          ws.once('message', (data) => {
            const text = (data as Buffer).toString()
            if (text.includes(expected)) resolve()
            else reject(new Error(`unexpected message ${text}`))
          })
        }
        if (opts.connect !== undefined) {
          const packet = opts.connect
          ws.once('message', () => { ws.send(packet); expect(opts.waitFor ?? '40{') })
        } else if (opts.waitFor === undefined) ws.once('open', () => resolve())
        else expect(opts.waitFor)
      }))
    }
    try {
      await Promise.all(pending)
    } catch (err) {
      for (const ws of clients) ws.terminate()
      throw err
    }
  }
  return clients
}

export async function closeClients (clients: WebSocket[]): Promise<void> {
  for (const ws of clients) ws.terminate()
  await sleep(200)
}

/** `prefix(i)` goes before the i-th frame's text (Socket.IO: `42<ack id>` before the event array). */
export async function messageLoad (opts: { clients: WebSocket[], valid: string, invalid: string, invalidEvery: number, rate: number, window: Window, prefix?: (i: number) => string }): Promise<LoadResult & { sent: number }> {
  const result = { completed: 0, failed: 0, latencies: [] as number[], sent: 0 }
  const queues = opts.clients.map(() => ({ times: [] as number[], head: 0 }))
  opts.clients.forEach((ws, c) => {
    const q = queues[c]!
    ws.on('message', () => {
      const scheduled = q.times[q.head++]!
      if (q.head > 1024) { q.times = q.times.slice(q.head); q.head = 0 }
      const t = now()
      if (t >= opts.window.start && t < opts.window.end) result.completed++
      if (scheduled >= opts.window.start && scheduled < opts.window.end) result.latencies.push(t - scheduled)
    })
  })
  let i = 0
  const maxQueue = 5000
  const fire = (scheduled: number): boolean => {
    const c = i % opts.clients.length
    const q = queues[c]!
    if (q.times.length - q.head > maxQueue) {
      if (scheduled >= opts.window.start && scheduled < opts.window.end) result.failed++
      i++
      return false
    }
    q.times.push(scheduled)
    const text = i % opts.invalidEvery === opts.invalidEvery - 1 ? opts.invalid : opts.valid
    opts.clients[c]!.send(opts.prefix !== undefined ? opts.prefix(i) + text : text)
    if (scheduled >= opts.window.start && scheduled < opts.window.end) result.sent++
    i++
    return true
  }
  await schedule(opts.rate, opts.window.end, fire)
  for (const ws of opts.clients) ws.removeAllListeners('message')
  return result
}

// ---------------------------------------------------------------------------------------------------------
// Broadcast receivers: count every frame; time a sample of them from the scheduled time the frame carries.

export function receiveBroadcasts (clients: WebSocket[], window: Window, sampleEvery: number): LoadResult {
  const result: LoadResult = { completed: 0, failed: 0, latencies: [] }
  const origin = performance.timeOrigin
  clients.forEach((ws, c) => {
    const timed = c % sampleEvery === 0
    ws.on('message', (data) => {
      const t = now()
      if (t < window.start || t >= window.end) return
      result.completed++
      if (!timed) return
      const text = (data as Buffer).toString()
      const at = text.indexOf('"t":')
      if (at < 0) return
      const scheduled = parseFloat(text.slice(at + 4, text.indexOf(',', at))) - origin
      if (scheduled >= window.start) result.latencies.push(t - scheduled)
    })
  })
  return result
}
