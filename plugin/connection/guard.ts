import type { FastifyRequest } from 'fastify'
import { ConnectionCounter } from '../core/limits'
import { DEFAULT_RESUME_BUDGET, ResumeBudget, type ResolvedResumeBudget } from './resume-budget'

/**
 * Process-wide limits on open sockets: how many one user or one IP may hold, and one sweep (a single
 * timer for the whole process, not one per socket) that visits every open connection: heartbeat, idle
 * timeout, slow readers, credential expiry, periodic re-authentication and overdue closes.
 */
export interface ConnectionLimits {
  /** Ping every socket this often and terminate one that did not answer the previous ping (ms; 0: off). */
  heartbeatInterval: number
  /** Close a socket that sent nothing for this long (ms; 0: off). */
  idleTimeout: number
  /** Close a socket whose buffered, unsent output exceeds this many bytes (0: off). */
  maxBufferedBytes: number
  /** Concurrent sockets one user may hold in this process (0: no limit). */
  maxConnectionsPerUser: number
  /** Concurrent sockets one client IP may hold in this process (0: no limit). */
  maxConnectionsPerIp: number
  /** Resumes per user and per IP (resume-budget.ts; default DEFAULT_RESUME_BUDGET). */
  resumeBudget?: ResolvedResumeBudget
}

export const CLOSE_IDLE = 4408
export const CLOSE_SLOW_READER = 1013
/** `app.close()`: come back elsewhere (RFC 6455's Service Restart); the client reconnects with backoff. */
export const CLOSE_SERVICE_RESTART = 1012
export const REASON_SERVICE_RESTART = 'Server restarting'
/** How often the drain looks whether in-flight handlers have finished (ms). */
const DRAIN_POLL = 10

/** The sweep's precision for credential expiry and overdue closes: it runs at least this often while sockets are open. */
export const SWEEP_PERIOD = 1000

/** What holds connection slots: the guard writes the keys it took, and reads them back on release. */
export interface SlotHolder {
  userSlot: string | null
  ipSlot: string | null
}

/** An open connection, visited on each sweep. */
export interface Swept {
  sweep (now: number): void
  /** Where the guard keeps it in its list (-1: not tracked); the guard's to write. */
  sweepIndex: number
  /** A handler of this socket is running, or frames wait for one (the drain waits for these). */
  readonly busy?: boolean
  close? (code?: number, reason?: string): void
}

export class ConnectionGuard {
  private readonly perUser = new ConnectionCounter()
  private readonly perIp = new ConnectionCounter()
  /** Swept connections, each knowing its index: a slot per socket where a Set entry costs about twice that. */
  private readonly tracked: Swept[] = []
  private timer: NodeJS.Timeout | undefined
  private tick: number
  /** `app.close()` began: new handshakes are refused (503 / 4503). */
  draining = false
  /** The drain is over: every socket is closed with 1012, and one that opens now is closed at once. */
  restarting = false
  /** The resume budget, taken before any history read (connection/replay.ts). */
  readonly resumes: ResumeBudget

  constructor (readonly limits: ConnectionLimits) {
    this.resumes = new ResumeBudget(limits.resumeBudget ?? DEFAULT_RESUME_BUDGET)
    this.tick = Math.max(10, Math.min(SWEEP_PERIOD, ...[limits.heartbeatInterval, limits.idleTimeout].filter((ms) => ms > 0)))
  }

  /** A route re-authenticates this often: the sweep must run at least as often. */
  requirePeriod (ms: number): void {
    if (ms > 0 && ms < this.tick) this.tick = Math.max(10, ms)
  }

  /** Takes the user's and the IP's slots for `holder`; `false` (nothing taken) when either is full. */
  acquire (holder: SlotHolder, request: FastifyRequest, userKey: string | null): boolean {
    const userLimit = this.limits.maxConnectionsPerUser
    const ipLimit = this.limits.maxConnectionsPerIp
    const user = userLimit > 0 && userKey !== null ? userKey : null
    const ip = ipLimit > 0 && typeof request.ip === 'string' ? request.ip : null
    if (user !== null && !this.perUser.acquire(user, userLimit)) return false
    if (ip !== null && !this.perIp.acquire(ip, ipLimit)) {
      if (user !== null) this.perUser.release(user)
      return false
    }
    holder.userSlot = user
    holder.ipSlot = ip
    return true
  }

  /** Gives back what `acquire` took; a second call does nothing. */
  release (holder: SlotHolder): void {
    if (holder.userSlot !== null) this.perUser.release(holder.userSlot)
    if (holder.ipSlot !== null) this.perIp.release(holder.ipSlot)
    holder.userSlot = null
    holder.ipSlot = null
  }

  /** Open slots and swept sockets, for tests and metrics. */
  counts (): { users: number, ips: number, sockets: number } {
    return { users: this.perUser.size, ips: this.perIp.size, sockets: this.tracked.length }
  }

  track (connection: Swept): void {
    if (connection.sweepIndex >= 0) return
    connection.sweepIndex = this.tracked.length
    this.tracked.push(connection)
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), this.tick)
      this.timer.unref()
    }
  }

  untrack (connection: Swept): void {
    const tracked = this.tracked
    const at = connection.sweepIndex
    if (at < 0 || tracked[at] !== connection) return
    const last = tracked.pop()!
    if (last !== connection) {
      tracked[at] = last
      last.sweepIndex = at
    }
    connection.sweepIndex = -1
  }

  private sweep (): void {
    const now = Date.now()
    const tracked = this.tracked
    // From the end: untracking moves the last connection into the freed slot, which is lower, so a
    // connection untracked meanwhile never makes another one skipped (one visited already may be visited
    // again, which a sweep allows: each of its checks acts once per period).
    for (let i = tracked.length - 1; i >= 0; i--) {
      const connection = tracked[i]
      if (connection !== undefined) connection.sweep(now)
    }
    if (tracked.length === 0 && this.timer !== undefined) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }

  close (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  /**
   * `app.close()` (docs/lifecycle.md "Draining on close"): from now on handshakes are refused; in-flight
   * handlers (and the frames queued behind them) get up to `grace` ms to finish and send their replies;
   * then every socket is closed with 1012 `Server restarting`. Resolves once the sockets are told.
   */
  async drain (grace: number): Promise<void> {
    this.draining = true
    const deadline = Date.now() + grace
    while (Date.now() < deadline && this.anyBusy()) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(DRAIN_POLL, Math.max(1, deadline - Date.now()))))
    }
    this.restarting = true
    const tracked = this.tracked.slice()
    for (let i = 0; i < tracked.length; i++) (tracked[i] as Swept).close?.(CLOSE_SERVICE_RESTART, REASON_SERVICE_RESTART)
  }

  private anyBusy (): boolean {
    const tracked = this.tracked
    for (let i = 0; i < tracked.length; i++) if ((tracked[i] as Swept).busy === true) return true
    return false
  }
}
