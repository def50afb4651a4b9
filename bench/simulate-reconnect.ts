/**
 * A reconnect storm as a discrete-event simulation (docs/scaling.md): what this machine cannot show, 1M
 * sockets coming back at once, computed from the measured CPU time of one handshake.
 *
 *     node --import tsx bench/simulate-reconnect.ts     # prints the tables; bench/capacity.ts puts them in RESULTS.md
 *
 * Model. `processes` servers, each one core handling handshakes first-come first-served, each costing
 * `handshakeUs` CPU µs (measured: bench/capacity.ts `handshake`/`storm`). At t = 0 every socket is dropped
 * (a deploy that restarts every instance, or a load balancer failover) and the new instances are up at once.
 * A client's first reconnection waits a delay from its policy; it lands on a uniformly random process.
 * With `backlog` set, a process whose queue already holds that many handshakes drops the SYN; the client's
 * kernel sends it again 1, 2, 4, 8, 16 and 32 s later (Linux's tcp_syn_retries = 6), then the connection
 * fails and the policy retries with attempt + 1. This is off by default (Infinity): Node accepts every
 * pending connection on each event-loop turn, so its kernel queue only fills within one turn and this
 * queue-length rule overstates the drops; the measured storm rows (backlog 511 against 4096) show that
 * effect instead. A handshake not finished `timeoutMs`
 * after its attempt began fails too (a proxy's timeout; the server still pays for it, as it only finds out
 * when it gets there), and the client retries with attempt + 1.
 * Policies are the client's (plugin/client/policy.ts):
 *   fixed        500 ms × 2^attempt, no jitter (what a hand-written reconnect loop often does)
 *   jitter-<ms>  full jitter: uniform below min(maxDelay, <ms> × 2^attempt), maxDelay = max(30 s, <ms>)
 *                (`backoff: { initialDelay: <ms>, maxDelay }`); jitter-500 is the default
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'

export interface StormInput {
  sockets: number
  processes: number
  handshakeUs: number
  policy: string
  timeoutMs?: number
  backlog?: number
  seed?: number
}

export interface StormResult extends Required<StormInput> {
  /** ms until the last socket is authenticated again (Infinity: not within the simulated 10 minutes). */
  allBackMs: number
  p50Ms: number
  p99Ms: number
  /** Highest completed handshakes per second, over 1 s windows, all processes. */
  peakPerSecond: number
  /** Attempts that timed out and were retried. */
  failedAttempts: number
  /** Server CPU spent on attempts that timed out, as a share of all handshake CPU. */
  wastedShare: number
  /** Longest wait of a handshake in a process's queue, ms. */
  maxQueueMs: number
  /** SYNs dropped on a full backlog (each retransmitted later by the client's kernel). */
  droppedSyns: number
}

/** A binary min-heap of [time, client, attempt] in parallel typed arrays (millions of events). */
class EventHeap {
  private time = new Float64Array(1024)
  private who = new Int32Array(1024)
  private attempt = new Int32Array(1024)
  size = 0
  push (t: number, c: number, a: number): void {
    if (this.size === this.time.length) {
      const grow = <T extends Float64Array | Int32Array>(old: T): T => { const next = new (old.constructor as new (n: number) => T)(old.length * 2); next.set(old); return next }
      this.time = grow(this.time); this.who = grow(this.who); this.attempt = grow(this.attempt)
    }
    let i = this.size++
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (this.time[parent]! <= t) break
      this.time[i] = this.time[parent]!; this.who[i] = this.who[parent]!; this.attempt[i] = this.attempt[parent]!
      i = parent
    }
    this.time[i] = t; this.who[i] = c; this.attempt[i] = a
  }

  /** Removes the earliest event into `out`. */
  pop (out: { t: number, c: number, a: number }): void {
    out.t = this.time[0]!; out.c = this.who[0]!; out.a = this.attempt[0]!
    const n = --this.size
    const t = this.time[n]!; const c = this.who[n]!; const a = this.attempt[n]!
    let i = 0
    while (true) {
      let child = 2 * i + 1
      if (child >= n) break
      if (child + 1 < n && this.time[child + 1]! < this.time[child]!) child++
      if (this.time[child]! >= t) break
      this.time[i] = this.time[child]!; this.who[i] = this.who[child]!; this.attempt[i] = this.attempt[child]!
      i = child
    }
    this.time[i] = t; this.who[i] = c; this.attempt[i] = a
  }
}

/** A small seeded generator (mulberry32), so a table is the same on every run. */
function random (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function delayOf (policy: string, attempt: number, rand: () => number): number {
  if (policy === 'fixed') return Math.min(30000, 500 * 2 ** attempt)
  const initial = Number(policy.replace(/^jitter-/, ''))
  if (!Number.isFinite(initial)) throw new Error(`unknown policy ${policy}`)
  // maxDelay is raised with a window above the default 30 s, as a deployment that wants the wider window must.
  return Math.floor(rand() * Math.min(Math.max(30000, initial), initial * 2 ** attempt))
}

export function simulateStorm (input: StormInput): StormResult {
  const full: Required<StormInput> = { timeoutMs: 10000, backlog: Infinity, seed: 1, ...input }
  const rand = random(full.seed)
  const service = full.handshakeUs / 1000
  const free = new Float64Array(full.processes)
  const heap = new EventHeap()
  // An event is an attempt's SYN: `a` packs the policy attempt and the SYN retransmits so far (a = attempt × 8 + syn).
  for (let c = 0; c < full.sockets; c++) heap.push(delayOf(full.policy, 0, rand), c, 0)
  let dropped = 0
  const done: number[] = []
  const perSecond = new Map<number, number>()
  let failed = 0
  let wasted = 0
  let maxQueue = 0
  const e = { t: 0, c: 0, a: 0 }
  const horizon = 600_000
  while (heap.size > 0) {
    heap.pop(e)
    if (e.t > horizon) break
    const attempt = e.a >> 3
    const syn = e.a & 7
    // The attempt began at its first SYN: 1 + 2 + ... seconds of retransmits earlier.
    const began = e.t - 1000 * (2 ** syn - 1)
    const p = Math.floor(rand() * full.processes)
    if ((free[p]! - e.t) / service >= full.backlog) {
      dropped++
      if (syn < 6) heap.push(e.t + 1000 * 2 ** syn, e.c, attempt * 8 + syn + 1)
      else { failed++; heap.push(e.t + delayOf(full.policy, attempt + 1, rand), e.c, (attempt + 1) * 8) }
      continue
    }
    const start = Math.max(e.t, free[p]!)
    const end = start + service
    free[p] = end
    maxQueue = Math.max(maxQueue, start - e.t)
    if (end - began > full.timeoutMs) {
      failed++
      wasted += service
      heap.push(began + full.timeoutMs + delayOf(full.policy, attempt + 1, rand), e.c, (attempt + 1) * 8)
    } else {
      done.push(end)
      const second = Math.floor(end / 1000)
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1)
    }
  }
  done.sort((a, b) => a - b)
  const pct = (q: number): number => done[Math.min(done.length - 1, Math.ceil(q * done.length) - 1)] ?? NaN
  return {
    ...full,
    allBackMs: done.length === full.sockets ? done.at(-1)! : Infinity,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    peakPerSecond: Math.max(...perSecond.values()),
    failedAttempts: failed,
    wastedShare: wasted / (wasted + done.length * service),
    maxQueueMs: maxQueue,
    droppedSyns: dropped
  }
}

/** The measured inputs (bench/capacity.ts writes them). */
export function measuredInputs (): Record<string, number> {
  return JSON.parse(readFileSync(path.join(__dirname, 'capacity-measured.json'), 'utf8'))
}

const fmtMs = (ms: number): string => !Number.isFinite(ms) ? '> 600 s' : ms >= 10000 ? `${(ms / 1000).toFixed(0)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`

export function stormTable (rows: StormResult[]): string[] {
  const out = ['| sockets | processes | CPU µs/handshake | policy | backlog | all back | p50 | p99 | peak handshakes/s | SYNs dropped | failed attempts | CPU wasted on timed-out handshakes |',
    '|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|']
  for (const r of rows) {
    out.push(`| ${r.sockets.toLocaleString('en-US')} | ${r.processes} | ${r.handshakeUs.toFixed(0)} | ${r.policy} | ${Number.isFinite(r.backlog) ? r.backlog : 'not modelled'} | ${fmtMs(r.allBackMs)} | ${fmtMs(r.p50Ms)} | ${fmtMs(r.p99Ms)} | ` +
      `${Math.round(r.peakPerSecond).toLocaleString('en-US')} | ${r.droppedSyns.toLocaleString('en-US')} | ${r.failedAttempts.toLocaleString('en-US')} | ${(100 * r.wastedShare).toFixed(0)}% |`)
  }
  return out
}

/**
 * The tables of docs/scaling.md: the measured 10k storm reproduced (calibration), then 1M sockets over the
 * processes the scaling model gives (`processesFor1M`), with the default jitter, none, and a jitter window
 * sized to keep the handshake rate at half the fleet's capacity.
 */
export function reconnectTables (m: Record<string, number>, processesFor1M: number): string[] {
  const us = m.stormReconnectUs ?? m.handshakeUs!
  // The plugin's client has no handshake timeout: the calibration runs without one, as the measured storm did.
  // Twice each: without SYN drops (a lower bound) and with the queue-length rule for a 511 backlog (an upper one).
  const calibration = ['fixed', 'jitter-500', 'jitter-5000'].flatMap((policy) => [Infinity, 511].map((backlog) =>
    simulateStorm({ sockets: m.stormClients ?? 10000, processes: 1, handshakeUs: us, policy, timeoutMs: Infinity, backlog })))
  const capacity = processesFor1M * 1e6 / us
  const window = Math.ceil(1e6 / (capacity / 2)) * 1000
  const big = ['fixed', 'jitter-500', `jitter-${window}`, `jitter-${2 * window}`].flatMap((policy) => [Infinity, 511].map((backlog) =>
    simulateStorm({ sockets: 1_000_000, processes: processesFor1M, handshakeUs: us, policy, backlog })))
  return [
    `Calibration, against the measured storm rows (1 process, ${us.toFixed(0)} CPU µs per reconnection as measured in the storm, no handshake timeout as with the plugin's client; ` +
      'each policy without SYN drops, then with the 511-backlog drop rule):', '',
    ...stormTable(calibration), '',
    `1,000,000 sockets dropped at once over ${processesFor1M} processes (fleet capacity ${Math.round(capacity).toLocaleString('en-US')} handshakes/s; a proxy in front times a handshake out after 10 s; ` +
      `a jitter window of ${window / 1000} s keeps the offered rate at half of it):`, '',
    ...stormTable(big)
  ]
}

if (require.main === module) {
  const m = measuredInputs()
  const processes = Number(process.argv[2] ?? 20)
  console.log(reconnectTables(m, processes).join('\n'))
}
