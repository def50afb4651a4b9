/**
 * The resume budget (docs/recovery.md, "The resume budget"): a resume makes the server read a stream per
 * group and splice a replay, tens of times the cost of a plain handshake, so each user and each client IP may
 * start only so many, refilled at a steady rate (token buckets). A handshake that carries a resume past the
 * budget is refused 429 / 4429 before any history read; the client keeps its positions and retries after its
 * backoff, and then recovers in full.
 *
 * Memory is bounded: a bucket that has refilled is the same as no bucket and is dropped, on a sweep made at
 * most once per `SWEEP_EVERY` ms when a take finds the map large; past `MAX_BUCKETS` even after the sweep,
 * the oldest buckets are dropped (an attacker with that many identities gets fresh buckets, not more memory).
 */

import { InvalidOptionError } from '../core/errors'

/** One token bucket's shape: `burst` resumes at once, refilled at `resumesPerSecond`. */
export interface ResumeRate {
  resumesPerSecond: number
  burst: number
}

export interface ResumeBudgetOptions {
  /** Per authenticated user (the `userKey`); `false`: none. Default `{ resumesPerSecond: 1, burst: 10 }`. */
  perUser?: ResumeRate | false
  /** Per client IP (`request.ip`: set `trustProxy` behind a proxy); `false`: none. Default `{ resumesPerSecond: 10, burst: 100 }`. */
  perIp?: ResumeRate | false
}

export interface ResolvedResumeBudget {
  readonly perUser: ResumeRate | null
  readonly perIp: ResumeRate | null
}

export const DEFAULT_RESUME_BUDGET: ResolvedResumeBudget = {
  perUser: { resumesPerSecond: 1, burst: 10 },
  perIp: { resumesPerSecond: 10, burst: 100 }
}

export const DETAIL_TOO_MANY_RESUMES = 'Too many reconnections with a resume; retry later.'

const MAX_BUCKETS = 100_000
const SWEEP_AT = 10_000
const SWEEP_EVERY = 1000

interface Bucket {
  tokens: number
  at: number
}

class Buckets {
  private readonly map = new Map<string, Bucket>()
  private swept = 0

  constructor (private readonly rate: ResumeRate) {}

  /** Whether a token was left for `key` at `now` (and takes it). */
  take (key: string, now: number): boolean {
    const rate = this.rate
    let bucket = this.map.get(key)
    if (bucket === undefined) {
      if (this.map.size >= SWEEP_AT) this.sweep(now)
      bucket = { tokens: rate.burst, at: now }
      this.map.set(key, bucket)
    } else {
      bucket.tokens = Math.min(rate.burst, bucket.tokens + (now - bucket.at) * rate.resumesPerSecond / 1000)
      bucket.at = now
    }
    if (bucket.tokens < 1) return false
    bucket.tokens--
    return true
  }

  /** Gives back a token taken for a resume that another bucket then refused. */
  giveBack (key: string): void {
    const bucket = this.map.get(key)
    if (bucket !== undefined) bucket.tokens = Math.min(this.rate.burst, bucket.tokens + 1)
  }

  get size (): number {
    return this.map.size
  }

  private sweep (now: number): void {
    if (now - this.swept >= SWEEP_EVERY) {
      this.swept = now
      const full = (this.rate.burst * 1000) / this.rate.resumesPerSecond
      for (const [key, bucket] of this.map) if (now - bucket.at >= full) this.map.delete(key)
    }
    // Map order is insertion order: the oldest first.
    for (const key of this.map.keys()) {
      if (this.map.size < MAX_BUCKETS) break
      this.map.delete(key)
    }
  }
}

export class ResumeBudget {
  private readonly users: Buckets | null
  private readonly ips: Buckets | null

  constructor (budget: ResolvedResumeBudget) {
    this.users = budget.perUser === null ? null : new Buckets(budget.perUser)
    this.ips = budget.perIp === null ? null : new Buckets(budget.perIp)
  }

  /** Whether this user (null: anonymous) from this IP may resume now; takes from both buckets when it may. */
  take (user: string | null, ip: string | undefined, now = Date.now()): boolean {
    const users = this.users
    const ips = this.ips
    if (users !== null && user !== null && !users.take(user, now)) return false
    if (ips !== null && typeof ip === 'string' && !ips.take(ip, now)) {
      if (users !== null && user !== null) users.giveBack(user)
      return false
    }
    return true
  }

  /** How many buckets are held (for tests and observability). */
  get size (): { users: number, ips: number } {
    return { users: this.users?.size ?? 0, ips: this.ips?.size ?? 0 }
  }
}

function checkRate (value: unknown, fallback: ResumeRate | null, where: string): ResumeRate | null {
  if (value === undefined) return fallback
  if (value === false) return null
  const rate = value as Partial<ResumeRate> | null
  if (rate === null || typeof rate !== 'object' ||
    typeof rate.resumesPerSecond !== 'number' || !(rate.resumesPerSecond > 0) || !Number.isFinite(rate.resumesPerSecond) ||
    typeof rate.burst !== 'number' || !Number.isInteger(rate.burst) || rate.burst < 1) {
    throw new InvalidOptionError(`${where} must be { resumesPerSecond: number > 0, burst: whole number >= 1 } or false`)
  }
  return { resumesPerSecond: rate.resumesPerSecond, burst: rate.burst }
}

/** The option `resumeBudget`, checked: `false` turns both buckets off. Throws FST_CHANX_INVALID_OPTION naming the option. */
export function resolveResumeBudget (value: unknown, where: string): ResolvedResumeBudget {
  if (value === undefined) return DEFAULT_RESUME_BUDGET
  if (value === false) return { perUser: null, perIp: null }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionError(`${where} must be { perUser?, perIp? } or false`)
  }
  const options = value as Record<string, unknown>
  for (const key of Object.keys(options)) {
    if (key !== 'perUser' && key !== 'perIp') throw new InvalidOptionError(`${where} has an unknown key "${key}" (perUser, perIp)`)
  }
  return {
    perUser: checkRate(options.perUser, DEFAULT_RESUME_BUDGET.perUser, where + '.perUser'),
    perIp: checkRate(options.perIp, DEFAULT_RESUME_BUDGET.perIp, where + '.perIp')
  }
}
