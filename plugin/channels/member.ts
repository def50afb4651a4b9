import type { FastifyBaseLogger } from 'fastify'
import { WebSocket } from 'ws'
import type { ConnectionGuard } from '../connection/guard'
import type { ChannelHub, ChannelMember } from './hub'
import { settle } from './settle'

let nextMemberId = 0

/**
 * A connection as the hub sees it. It exists from the handshake on, before the socket opens, so that its
 * groups are joined before the authentication message goes out: what is sent to it meanwhile waits and is
 * sent, in order, right after that message.
 */
export class SocketMember implements ChannelMember {
  readonly id: string
  private socket: WebSocket | null = null
  private pending: string[] | null = null
  private closeRequest: { code: number, reason: string } | null = null
  eventListener: ((name: string, payload: unknown) => void) | null = null
  /** Chanx's `group_complete` frame, sent after each relayed group message when the route has `sendCompletion`. */
  groupComplete: string | null = null

  constructor (
    readonly userKey: string | null,
    private readonly hub: ChannelHub,
    private readonly guard: ConnectionGuard,
    private readonly log: FastifyBaseLogger
  ) {
    this.id = (++nextMemberId).toString(36)
  }

  get groups (): readonly string[] {
    return this.hub.groupsOf(this)
  }

  join (group: string): Promise<void> {
    return this.hub.join(this, group)
  }

  leave (group: string): Promise<void> {
    return this.hub.leave(this, group)
  }

  /** `ctx.broadcast`: to the given groups, or to this socket's own. */
  broadcast (message: object, groups?: string | readonly string[], excludeSelf = true): Promise<void> {
    return settle(() => this.hub.broadcast(groups ?? this.hub.groupsOf(this), message, { sender: this, excludeSelf }), this.log)
  }

  sendEvent (name: string, payload: unknown, groups?: string | readonly string[]): Promise<void> {
    return settle(() => this.hub.sendEvent(groups ?? this.hub.groupsOf(this), name, payload), this.log)
  }

  /** Leaves every group: on any close of the socket, or a handshake whose socket never opened. */
  leaveAll (): void {
    this.hub.leaveAll(this).catch((err: unknown) => this.log.warn({ err }, 'fastify-chanx: leaving the groups of a closed socket failed'))
  }

  /** The socket opened: flush what waited, then carry out a close that was asked for meanwhile. */
  open (socket: WebSocket): void {
    this.socket = socket
    const pending = this.pending
    this.pending = null
    if (pending !== null) for (const data of pending) this.send(data)
    if (this.closeRequest !== null) socket.close(this.closeRequest.code, this.closeRequest.reason)
  }

  send (data: string): void {
    const socket = this.socket
    if (socket === null) {
      (this.pending ??= []).push(data)
      return
    }
    if (socket.readyState !== WebSocket.OPEN || this.guard.overflowing(socket)) return
    socket.send(data)
  }

  /** A broadcast copy: sent, then followed by `group_complete` where completion is on (as Chanx's group relay). */
  sendCopy (data: string): void {
    this.send(data)
    if (this.groupComplete !== null) this.send(this.groupComplete)
  }

  close (code: number, reason: string): void {
    if (this.socket === null) this.closeRequest = { code, reason }
    else this.socket.close(code, reason)
  }

  onEvent (name: string, payload: unknown): void {
    this.eventListener?.(name, payload)
  }
}
