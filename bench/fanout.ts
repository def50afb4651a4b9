/*
 * Fan-out of one broadcast to 1, 100, 1,000 and 5,000 sockets in one group, through the ChannelHub in
 * process (memory layer) and over Redis, against a loop over the raw `ws` sockets sending a string
 * serialized beforehand. Real `ws` clients on 127.0.0.1, in this process.
 *
 * A round is timed from the call until every client has received its frame (median of the rounds, ms).
 * Plugin and baseline rounds alternate after BENCH_WARMUP (10) warm-up pairs, so JIT and GC drift hit
 * both alike (measuring one side first, cold, makes the plugin look faster than the raw loop).
 * Over Redis the broadcast comes from a second hub with no members, so every frame crosses Redis
 * (publish -> subscriber -> local fan-out); the baseline is the same raw loop.
 * A `#   call` line follows each row: the time inside the synchronous call alone. For the memory layer
 * that is the hub's local fan-out against the raw loop, which isolates the hub's own overhead from the
 * clients' receiving; for Redis it is only the publish.
 *
 *   node --import tsx bench/fanout.ts               # all sizes, both layers
 *   BENCH_SIZES=1,100 BENCH_ROUNDS=30 node --import tsx bench/fanout.ts
 *
 * Prints `bench fanout-<n>-<layer>: plugin=<ms> baseline=<ms> ratio=<plugin/baseline>`.
 * The Redis rows need redis-server on the PATH (or REDIS_SERVER); without it they are skipped with a note.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { ChannelHub, type ChannelMember } from '../plugin/channels/hub'
import { createRedisLayer } from '../plugin/channels/redis/layer'
import { RedisServer, redisSkipReason } from '../test/helpers/redis'

const SIZES = (process.env.BENCH_SIZES ?? '1,100,1000,5000').split(',').map(Number)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 21)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 10)
const GROUP = 'bench'
const MESSAGE = { action: 'chat', payload: { room: 'lobby', text: 'hello everyone, this is one broadcast', n: 42 } }

/** N clients connected to a ws server, and a way to wait until each has one more frame. */
interface Fleet {
  server: Server
  wss: WebSocketServer
  serverSockets: WebSocket[]
  clients: WebSocket[]
  /** Resolves when every client has received one frame since the call. */
  expectOneEach (): Promise<void>
}

async function fleet (n: number): Promise<Fleet> {
  const server = createServer()
  const wss = new WebSocketServer({ server })
  const serverSockets: WebSocket[] = []
  wss.on('connection', (ws) => { serverSockets.push(ws) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  let received = 0
  let expected = 0
  let wake: (() => void) | null = null
  const onMessage = (): void => {
    if (++received === expected && wake !== null) {
      const w = wake
      wake = null
      w()
    }
  }
  const clients: WebSocket[] = []
  for (let i = 0; i < n; i += 250) {
    const batch: Promise<void>[] = []
    for (let j = i; j < Math.min(n, i + 250); j++) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false })
      ws.on('message', onMessage)
      clients.push(ws)
      batch.push(new Promise((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) }))
    }
    await Promise.all(batch)
  }
  while (serverSockets.length < n) await new Promise((resolve) => setImmediate(resolve))
  return {
    server,
    wss,
    serverSockets,
    clients,
    expectOneEach () {
      received = 0
      expected = n
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${received}/${n} frames within 10 s`)), 10000)
        wake = () => { clearTimeout(timer); resolve() }
      })
    }
  }
}

async function closeFleet (f: Fleet): Promise<void> {
  for (const c of f.clients) c.terminate()
  for (const s of f.serverSockets) s.terminate()
  await new Promise((resolve) => f.wss.close(resolve))
  await new Promise((resolve) => f.server.close(resolve))
}

function member (ws: WebSocket, i: number): ChannelMember {
  return {
    id: 'c' + i,
    userKey: 'user' + (i % 50),
    send (data) { ws.send(data) },
    close (code, reason) { ws.close(code, reason) }
  }
}

/** Rounds' end-to-end times, and the time spent inside the synchronous send call alone. */
const callTimes = { current: [] as number[] }
async function time (f: Fleet, send: () => unknown): Promise<number> {
  const done = f.expectOneEach()
  const t0 = process.hrtime.bigint()
  const p = send()
  callTimes.current.push(Number(process.hrtime.bigint() - t0) / 1e6)
  if (p instanceof Promise) p.catch(() => {})
  await done
  return Number(process.hrtime.bigint() - t0) / 1e6
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

/** Alternate plugin and baseline rounds so drift (GC, JIT) hits both alike. */
async function measure (f: Fleet, plugin: () => unknown): Promise<{ plugin: number, baseline: number, pluginCall: number, baselineCall: number }> {
  const preSerialized = JSON.stringify(MESSAGE)
  const sockets = f.serverSockets
  const baseline = (): void => {
    for (let i = 0; i < sockets.length; i++) sockets[i].send(preSerialized)
  }
  const p: number[] = []
  const b: number[] = []
  const pc: number[] = []
  const bc: number[] = []
  for (let r = 0; r < WARMUP + ROUNDS; r++) {
    callTimes.current = []
    const tp = await time(f, plugin)
    const tb = await time(f, baseline)
    if (r >= WARMUP) { p.push(tp); b.push(tb); pc.push(callTimes.current[0]); bc.push(callTimes.current[1]) }
  }
  return { plugin: median(p), baseline: median(b), pluginCall: median(pc), baselineCall: median(bc) }
}

function report (n: number, layer: string, r: { plugin: number, baseline: number, pluginCall: number, baselineCall: number }): void {
  console.log(`bench fanout-${n}-${layer}: plugin=${r.plugin.toFixed(3)} baseline=${r.baseline.toFixed(3)} ratio=${(r.plugin / r.baseline).toFixed(2)}`)
  // The synchronous call alone: for the memory layer the local fan-out itself, for Redis only the publish.
  console.log(`#   call ${n}-${layer}: plugin=${r.pluginCall.toFixed(3)} baseline=${r.baselineCall.toFixed(3)} ratio=${(r.pluginCall / r.baselineCall).toFixed(2)}`)
}

async function main (): Promise<void> {
  console.log(`# median of ${ROUNDS} rounds, milliseconds from the call until every client has its frame`)
  let redis: RedisServer | null = null
  let skipRedis: string | false
  try {
    skipRedis = redisSkipReason()
  } catch (err) {
    skipRedis = (err as Error).message
  }
  if (skipRedis === false) redis = await RedisServer.start()
  try {
    for (const n of SIZES) {
      const f = await fleet(n)
      try {
        const hub = new ChannelHub()
        for (let i = 0; i < n; i++) await hub.join(member(f.serverSockets[i], i), GROUP)
        report(n, 'memory', await measure(f, () => hub.broadcast(GROUP, MESSAGE)))
        await hub.close()

        if (redis !== null) {
          const receiver = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }) })
          const sender = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }) })
          for (let i = 0; i < n; i++) await receiver.join(member(f.serverSockets[i], i), GROUP)
          report(n, 'redis', await measure(f, () => sender.broadcast(GROUP, MESSAGE)))
          await sender.close()
          await receiver.close()
        } else {
          console.log(`# fanout-${n}-redis skipped: ${skipRedis}`)
        }
      } finally {
        await closeFleet(f)
      }
    }
  } finally {
    await redis?.stop()
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
