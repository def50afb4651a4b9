import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { ConnectionCounter } from './limits'

/**
 * Process-wide limits on open sockets: how many one user or one IP may hold, and one sweep (a single
 * timer, not one per socket) that pings peers and drops those that stop answering, closes idle sockets,
 * and closes slow readers whose unsent output passes a bound.
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

interface Tracked {
  lastActivity: number
  lastPing: number
  awaitingPong: boolean
}

export class ConnectionGuard {
  private readonly perUser = new ConnectionCounter()
  private readonly perIp = new ConnectionCounter()
  private readonly tracked = new Map<WebSocket, Tracked>()
  private timer: NodeJS.Timeout | undefined
  private readonly tick: number

  constructor (readonly limits: ConnectionLimits) {
    const periods = [limits.heartbeatInterval, limits.idleTimeout, limits.maxBufferedBytes > 0 ? 1000 : 0].filter((ms) => ms > 0)
    this.tick = periods.length === 0 ? 0 : Math.max(10, Math.min(...periods, 1000))
  }

  /** Takes the user's and the IP's slots; `null` when either is full. The release is idempotent. */
  admit (request: FastifyRequest, userKey: string | null): (() => void) | null {
    const userLimit = this.limits.maxConnectionsPerUser
    const ipLimit = this.limits.maxConnectionsPerIp
    const user = userLimit > 0 && userKey !== null ? userKey : null
    const ip = ipLimit > 0 && typeof request.ip === 'string' ? request.ip : null
    if (user !== null && !this.perUser.acquire(user, userLimit)) return null
    if (ip !== null && !this.perIp.acquire(ip, ipLimit)) {
      if (user !== null) this.perUser.release(user)
      return null
    }
    let released = false
    return () => {
      if (released) return
      released = true
      if (user !== null) this.perUser.release(user)
      if (ip !== null) this.perIp.release(ip)
    }
  }

  /** Open slots, for tests and metrics. */
  counts (): { users: number, ips: number, sockets: number } {
    return { users: this.perUser.size, ips: this.perIp.size, sockets: this.tracked.size }
  }

  track (socket: WebSocket): void {
    if (this.tick === 0) return
    const now = Date.now()
    const state: Tracked = { lastActivity: now, lastPing: now, awaitingPong: false }
    this.tracked.set(socket, state)
    // Only the listeners an enabled limit needs: each costs a closure per socket.
    if (this.limits.heartbeatInterval > 0) socket.on('pong', () => { state.awaitingPong = false })
    if (this.limits.idleTimeout > 0) {
      const active = (): void => { state.lastActivity = Date.now() }
      socket.on('message', active)
      socket.on('ping', active)
    }
    socket.once('close', () => { this.tracked.delete(socket) })
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), this.tick)
      this.timer.unref()
    }
  }

  /** Closes a slow reader now, where output is produced; `true` when it was closed. */
  overflowing (socket: WebSocket): boolean {
    const limit = this.limits.maxBufferedBytes
    if (limit === 0 || socket.bufferedAmount <= limit) return false
    socket.close(CLOSE_SLOW_READER, 'Slow reader')
    return true
  }

  private sweep (): void {
    const now = Date.now()
    const { heartbeatInterval, idleTimeout } = this.limits
    for (const [socket, state] of this.tracked) {
      if (socket.readyState !== socket.OPEN) continue
      if (this.overflowing(socket)) continue
      if (idleTimeout > 0 && now - state.lastActivity >= idleTimeout) {
        socket.close(CLOSE_IDLE, 'Idle timeout')
        continue
      }
      if (heartbeatInterval > 0 && now - state.lastPing >= heartbeatInterval) {
        if (state.awaitingPong) {
          socket.terminate()
          continue
        }
        state.awaitingPong = true
        state.lastPing = now
        socket.ping()
      }
    }
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
