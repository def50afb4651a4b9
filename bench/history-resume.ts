/**
 * What a resume costs, and what one account resuming in a loop does to everyone else (issue 25, item 10);
 * run by bench/history.ts, which writes the figures (also runnable alone: `node --import tsx
 * bench/history-resume.ts`, which prints them).
 *
 * 1. Cost per resume. A target app process (history on, over Redis) whose route puts the user in GROUPS
 *    groups, each holding FILL kept messages. The harness opens COST_SAMPLES sockets one after another,
 *    each resuming every group from the start of its window (the costliest resume the server answers in
 *    full), and as many plain handshakes. Per handshake: the app's CPU (process.cpuUsage, in its own
 *    process), Redis's command time (the sum of INFO commandstats' usec, INFO itself excluded) and Redis's
 *    whole CPU (INFO cpu, networking included).
 * 2. The attack. The same target, and a victim: another app process on the same Redis broadcasting with
 *    history 200 times a second, timing each broadcast's round trip (the history script) and a PING. The
 *    harness resumes as one user ATTACK_RATE times a second for ATTACK_SECONDS, once with the default
 *    resume budget and once with the budget off, after a quiet window with no attack. Reported: the
 *    victim's p50 / p99, and how many resumes were served or refused (4429).
 *
 * BENCH_PROF=<dir> writes a CPU profile of each child process there (bench/profile-summary.ts reads them).
 */
import { fork, type ChildProcess } from 'node:child_process'
import Redis from 'ioredis'
import WebSocket from 'ws'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import chanx from '../plugin'
import { closeApp } from '../plugin/testing'
import { buildRecoveryApp } from '../test/helpers/recovery'
import { RedisServer } from '../test/helpers/redis'

const GROUPS = Number(process.env.BENCH_RESUME_GROUPS ?? 10)
const FILL = Number(process.env.BENCH_RESUME_FILL ?? 500)
const COST_SAMPLES = Number(process.env.BENCH_RESUME_SAMPLES ?? 30)
const ATTACK_RATE = 25
const ATTACK_SECONDS = Number(process.env.BENCH_ATTACK_SECONDS ?? 15)
const VICTIM_RATE = 200

export interface ResumeCost {
  /** Bytes of the resume's request line (path and query). */
  requestBytes: number
  replayed: number
  resume: { cpuMs: number, redisCommandMs: number, redisCpuMs: number }
  plain: { cpuMs: number, redisCommandMs: number, redisCpuMs: number }
}

export interface AttackWindow {
  name: string
  broadcastP50: number
  broadcastP99: number
  pingP99: number
  served: number
  refused: number
}

const groups = Array.from({ length: GROUPS }, (_, i) => `g${i}`)

// ---------------------------------------------------------------- the child processes

async function serveTarget (budget: 'on' | 'off'): Promise<void> {
  const app = await buildRecoveryApp({
    redis: { url: process.env.REDIS_URL!, prefix: process.env.PREFIX! },
    heartbeatInterval: 0,
    ...(budget === 'off' ? { resumeBudget: false } : {})
  }, new Map([['mallory', groups], ['alice', groups]]))
  await app.listen({ port: 0, host: '127.0.0.1' })
  if (process.env.FILL_HISTORY === '1') {
    const text = 'a kept chat line of an ordinary length, about sixty bytes'
    for (let i = 0; i < FILL; i++) {
      await Promise.all(groups.map((group) => app.chanx.broadcast(group, { action: 'said', payload: { text } })))
    }
  }
  let start = process.cpuUsage()
  process.on('message', (command: { cmd: string }) => {
    if (command.cmd === 'cpu-start') {
      start = process.cpuUsage()
      process.send!({ ok: true })
    } else if (command.cmd === 'cpu') {
      const used = process.cpuUsage(start)
      process.send!({ cpu: used.user + used.system })
    } else if (command.cmd === 'exit') {
      void closeApp(app).then(() => process.exit(0))
    }
  })
  process.send!({ port: (app.server.address() as { port: number }).port, token: app.jwt.sign({ sub: 'mallory' }) })
}

async function serveVictim (): Promise<void> {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { redis: { url: process.env.REDIS_URL!, prefix: process.env.PREFIX! }, history: true, heartbeatInterval: 0 })
  await app.ready()
  const probe = new Redis(process.env.REDIS_URL!)
  let broadcasts: number[] = []
  let pings: number[] = []
  const timer = setInterval(() => {
    const started = performance.now()
    void app.chanx.broadcast('victim-room', { action: 'tick', payload: { at: started } })
      .then(() => { broadcasts.push(performance.now() - started) }, () => { broadcasts.push(Infinity) })
    const pinged = performance.now()
    void probe.ping().then(() => { pings.push(performance.now() - pinged) }, () => { pings.push(Infinity) })
  }, 1000 / VICTIM_RATE)
  process.on('message', (command: { cmd: string }) => {
    if (command.cmd === 'reset') {
      broadcasts = []
      pings = []
      process.send!({ ok: true })
    } else if (command.cmd === 'report') {
      process.send!({ broadcasts, pings })
    } else if (command.cmd === 'exit') {
      clearInterval(timer)
      probe.disconnect()
      void app.close().then(() => process.exit(0))
    }
  })
  process.send!({ ok: true })
}

// ---------------------------------------------------------------- the harness

function once<T> (child: ChildProcess): Promise<T> {
  return new Promise((resolve) => child.once('message', (m) => resolve(m as T)))
}

function ask<T> (child: ChildProcess, cmd: string): Promise<T> {
  const answer = once<T>(child)
  child.send({ cmd })
  return answer
}

async function stop (child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.send({ cmd: 'exit' })
  await exited
}

function forkChild (role: string, redisUrl: string, prefix: string, env: Record<string, string> = {}): ChildProcess {
  return fork(__filename, [role, ...(env.BUDGET === undefined ? [] : [env.BUDGET])],
    { execArgv: ['--import', 'tsx', ...(process.env.BENCH_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`])], env: { ...process.env, REDIS_URL: redisUrl, PREFIX: prefix, ...env } })
}

async function redisCounters (redis: Redis): Promise<{ commandUs: number, cpuUs: number }> {
  const [commands, cpu] = await Promise.all([redis.info('commandstats'), redis.info('cpu')])
  let commandUs = 0
  for (const match of commands.matchAll(/^cmdstat_([^:]+):calls=\d+,usec=(\d+)/gm)) {
    if (match[1] !== 'info') commandUs += Number(match[2])
  }
  const seconds = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(cpu)![1])
  return { commandUs, cpuUs: (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6 }
}

interface Handshake { status: number, messages: number, closed: Promise<number> }

/**
 * Opens a socket and resolves once its authentication message and `expect` more messages arrived (or,
 * when `expect` is undefined, once 200 ms passed without a message); refused sockets resolve at once.
 */
function handshake (url: string, expect?: number): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
    let status = 0
    let messages = -1
    let quiet: NodeJS.Timeout | undefined
    const done = (): void => { clearTimeout(quiet); ws.terminate(); resolve({ status, messages: Math.max(messages, 0), closed }) }
    ws.on('message', (data) => {
      if (++messages === 0) {
        status = JSON.parse(String(data)).payload.status_code
        if (status !== 200) { done(); return }
      }
      if (expect === undefined) {
        clearTimeout(quiet)
        quiet = setTimeout(done, 200)
      } else if (messages === expect) done()
    })
    ws.once('error', reject)
  })
}

/** The resume URL that asks for every group from the start of its window, and its plain twin. */
async function urls (port: number, token: string): Promise<{ plain: string, resume: string }> {
  const plain = `ws://127.0.0.1:${port}/ws?token=${token}`
  const auth = await new Promise<any>((resolve, reject) => {
    const ws = new WebSocket(plain)
    ws.once('message', (data) => { resolve(JSON.parse(String(data))); ws.terminate() })
    ws.once('error', reject)
  })
  const positions: Record<string, [number, string]> = {}
  for (const group of groups) {
    const [offset, epoch] = auth.chanx_recovery.positions[group] as [number, string]
    positions[group] = [Math.max(0, offset - FILL), epoch]
  }
  const resume = Buffer.from(JSON.stringify({ t: auth.chanx_recovery.token, g: positions })).toString('base64url')
  return { plain, resume: `${plain}&chanx_recover=${resume}` }
}

async function measure (target: ChildProcess, redis: Redis, url: string, expect: number | undefined) {
  await ask(target, 'cpu-start')
  const before = await redisCounters(redis)
  for (let i = 0; i < COST_SAMPLES; i++) await handshake(url, expect)
  const after = await redisCounters(redis)
  const { cpu } = await ask<{ cpu: number }>(target, 'cpu')
  return {
    cpuMs: cpu / COST_SAMPLES / 1000,
    redisCommandMs: (after.commandUs - before.commandUs) / COST_SAMPLES / 1000,
    redisCpuMs: (after.cpuUs - before.cpuUs) / COST_SAMPLES / 1000
  }
}

/** Per handshake, resume against plain, on a target whose budget is off (the budget would refuse the samples). */
export async function resumeCost (redisUrl: string): Promise<ResumeCost> {
  const prefix = `cost${Math.random().toString(36).slice(2)}:`
  const target = forkChild('target', redisUrl, prefix, { BUDGET: 'off', FILL_HISTORY: '1' })
  const { port, token } = await once<{ port: number, token: string }>(target)
  const redis = new Redis(redisUrl)
  try {
    const { plain, resume } = await urls(port, token)
    const first = await handshake(resume)
    if (first.status !== 200) throw new Error(`the resume was refused (${first.status})`)
    const replayed = first.messages
    await handshake(plain, 0)
    return {
      requestBytes: resume.length - 'ws://127.0.0.1:'.length - String(port).length,
      replayed,
      resume: await measure(target, redis, resume, replayed),
      plain: await measure(target, redis, plain, 0)
    }
  } finally {
    redis.disconnect()
    await stop(target)
  }
}

const percentile = (values: number[], p: number): number => {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
}

async function attackWindow (name: string, victim: ChildProcess, url: string | null, expect: number): Promise<AttackWindow> {
  await ask(victim, 'reset')
  let served = 0
  let refused = 0
  const open: Promise<unknown>[] = []
  const end = Date.now() + ATTACK_SECONDS * 1000
  while (Date.now() < end) {
    const tick = new Promise((resolve) => setTimeout(resolve, 1000 / ATTACK_RATE))
    if (url !== null) {
      // Not awaited: an attacker does not wait for one resume before the next.
      open.push(handshake(url, expect).then((h) => { if (h.status === 200) served++; else refused++ }, () => { refused++ }))
    }
    await tick
  }
  const { broadcasts, pings } = await ask<{ broadcasts: number[], pings: number[] }>(victim, 'report')
  await Promise.all(open)
  return { name, broadcastP50: percentile(broadcasts, 0.5), broadcastP99: percentile(broadcasts, 0.99), pingP99: percentile(pings, 0.99), served, refused }
}

/** The victim's Redis latency with no attack, under the attack with the default budget, and with none. */
export async function resumeAttack (redisUrl: string, replayed: number): Promise<AttackWindow[]> {
  const prefix = `attack${Math.random().toString(36).slice(2)}:`
  const victim = forkChild('victim', redisUrl, prefix)
  await once(victim)
  const windows: AttackWindow[] = []
  try {
    windows.push(await attackWindow('no attack', victim, null, 0))
    for (const budget of ['on', 'off'] as const) {
      const target = forkChild('target', redisUrl, prefix, { BUDGET: budget, FILL_HISTORY: budget === 'on' ? '1' : '0' })
      const { port, token } = await once<{ port: number, token: string }>(target)
      const { resume } = await urls(port, token)
      windows.push(await attackWindow(budget === 'on' ? 'attack, default budget' : 'attack, budget off', victim, resume, replayed))
      await stop(target)
    }
  } finally {
    await stop(victim)
  }
  return windows
}

export function formatCost (cost: ResumeCost): string[] {
  const f = (x: number): string => x.toFixed(2)
  return [
    '| handshake | app CPU | Redis command time | Redis CPU (networking included) |',
    '|---|---:|---:|---:|',
    `| resume of ${GROUPS} groups × ${FILL} kept messages (${cost.requestBytes}-byte request, ${cost.replayed} replayed) | ${f(cost.resume.cpuMs)} ms | ${f(cost.resume.redisCommandMs)} ms | ${f(cost.resume.redisCpuMs)} ms |`,
    `| plain, same user and groups | ${f(cost.plain.cpuMs)} ms | ${f(cost.plain.redisCommandMs)} ms | ${f(cost.plain.redisCpuMs)} ms |`
  ]
}

export function formatAttack (windows: AttackWindow[]): string[] {
  const f = (x: number): string => x.toFixed(2)
  return [
    `| ${ATTACK_SECONDS} s window | victim broadcast p50 | victim broadcast p99 (target ≤ 5 ms with the budget) | victim PING p99 | resumes served | refused 4429 |`,
    '|---|---:|---:|---:|---:|---:|',
    ...windows.map((w) => `| ${w.name} | ${f(w.broadcastP50)} ms | ${f(w.broadcastP99)} ms | ${f(w.pingP99)} ms | ${w.served} | ${w.refused} |`)
  ]
}

export const ATTACK_SETTINGS = `one user resuming ${ATTACK_RATE} times a second; the victim is another app process broadcasting with history ${VICTIM_RATE} times a second`

if (process.argv[2] === 'target') {
  serveTarget(process.argv[3] as 'on' | 'off').catch((err) => { console.error(err); process.exit(1) })
} else if (process.argv[2] === 'victim') {
  serveVictim().catch((err) => { console.error(err); process.exit(1) })
} else if (require.main === module) {
  void (async () => {
    const redis = await RedisServer.start()
    try {
      const cost = await resumeCost(redis.url)
      console.log(formatCost(cost).join('\n'))
      console.log(formatAttack(await resumeAttack(redis.url, cost.replayed)).join('\n'))
    } finally {
      await redis.stop()
    }
  })().catch((err) => { console.error(err); process.exit(1) })
}
