import type { FastifyRequest } from 'fastify'
import { ConnectionCounter } from './limits'

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
}

export const CLOSE_IDLE = 4408
export const CLOSE_SLOW_READER = 1013

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
}

export class ConnectionGuard {
  private readonly perUser = new ConnectionCounter()
  private readonly perIp = new ConnectionCounter()
  private readonly tracked = new Set<Swept>()
  private timer: NodeJS.Timeout | undefined
  private tick: number

  constructor (readonly limits: ConnectionLimits) {
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
    return { users: this.perUser.size, ips: this.perIp.size, sockets: this.tracked.size }
  }

  track (connection: Swept): void {
    this.tracked.add(connection)
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), this.tick)
      this.timer.unref()
    }
  }

  untrack (connection: Swept): void {
    this.tracked.delete(connection)
  }

  private sweep (): void {
    const now = Date.now()
    for (const connection of this.tracked) connection.sweep(now)
    if (this.tracked.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }

  close (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }
}
