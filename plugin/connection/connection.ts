import type { Channel } from 'node:diagnostics_channel'
import type { EventEmitter } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { WebSocket } from 'ws'
import type { ChannelMember } from '../channels/member'
import { guarded, settle } from '../channels/settle'
import { channels, routeOf, type ConnectionEvent } from '../core/diagnostics'
import { DETAIL_TOKEN_EXPIRED, takeCredentialExpiry, type CredentialHolder } from '../core/credentials'
import type { SharedFrame } from '../core/frame'
import { authenticationMessage, closeReason, refusalCloseCode, statusText } from '../core/wire'
import { corkSocket, uncorkSocket, upgradeStream } from '../core/ws-internals'
import { RouterConnection, type ConnectionOwner, type RawFrame } from '../messages/dispatch'
import { CLOSE_IDLE, CLOSE_SERVICE_RESTART, CLOSE_SLOW_READER, REASON_SERVICE_RESTART, type SlotHolder, type Swept } from './guard'
import { cutSlowReader, writeSharedToSocket, writeToSocket } from './output'
import { reauthenticate } from './reauthentication'
import { CLOSE_GRACE, completionOf, type ConnectionRoute, type ConnectionScope, type ConnectionServices } from './scope'
import { carry, onFrame, onPing, onPong, onSocketClose, type SocketOwner } from './socket-listeners'
import {
  AWAITING_PONG, HAS_EXPIRY, KILL_PENDING, Opening, REAUTHENTICATING, RELEASED, Seldom, sinceEpoch, unwatch
} from './state'

export { CLOSE_GRACE, type ConnectionRoute, type ConnectionScope, type ConnectionServices } from './scope'

/**
 * One object owns a socket from admission to release (docs/lifecycle.md): its connection slots, its
 * membership in the channel hub (it is the hub's member), its output (what waits before the socket opens,
 * and every write after), its credential watch, its router state, and its one close path. An idle socket
 * is the common case, so what each one holds is kept small (connection/state.ts; docs/benchmarks.md
 * "Memory per idle connection"); its listeners are shared functions (connection/socket-listeners.ts).
 */

let nextId = 0

function noop (): void {}

export class SocketConnection implements ChannelMember, ConnectionOwner, CredentialHolder, SlotHolder, Swept, SocketOwner {
  /** RELEASED, AWAITING_PONG, REAUTHENTICATING, HAS_EXPIRY, KILL_PENDING. */
  private flags = 0
  /** Times since EPOCH (ms). */
  private lastActivity = 0
  private lastPing = 0
  private seldom: Seldom | null = null
  private socket: WebSocket | null = null
  /**
   * One field for two states that never overlap: the Opening until the socket opens, then the router
   * state once made (see `opening` and `router`).
   */
  private stage: Opening | RouterConnection | null = new Opening()
  /** When the credentials lapse (since EPOCH, with HAS_EXPIRY). */
  private expiresAt = 0
  /** The guard's (guard.ts). */
  sweepIndex = -1
  /** The route's and the plugin's, shared by the route's connections: one field instead of two. */
  private readonly scope: ConnectionScope

  constructor (
    readonly request: FastifyRequest,
    readonly userKey: string | null,
    scope: ConnectionScope
  ) {
    this.scope = scope
  }

  private get route (): ConnectionRoute {
    return this.scope.route
  }

  private get services (): ConnectionServices {
    return this.scope.services
  }

  /** Unique in this process; numbered when first asked (logs, the hub's identity of a connection without history). */
  get id (): string {
    const seldom = this.more()
    if (seldom.id === '') seldom.id = (++nextId).toString(36)
    return seldom.id
  }

  /** Until the socket opens; `null` from then on. */
  private get opening (): Opening | null {
    const stage = this.stage
    return stage instanceof Opening ? stage : null
  }

  /** The router state, made at the first frame, event or close (at open when the route has `onAuthenticated`). */
  private get router (): RouterConnection | null {
    const stage = this.stage
    return stage instanceof RouterConnection ? stage : null
  }

  private more (): Seldom {
    return (this.seldom ??= new Seldom())
  }

  /** SlotHolder: the guard's. */
  get userSlot (): string | null {
    return this.seldom === null ? null : this.seldom.userSlot
  }

  set userSlot (slot: string | null) {
    if (slot !== null || this.seldom !== null) this.more().userSlot = slot
  }

  get ipSlot (): string | null {
    return this.seldom === null ? null : this.seldom.ipSlot
  }

  set ipSlot (slot: string | null) {
    if (slot !== null || this.seldom !== null) this.more().ipSlot = slot
  }

  /** With history: the connection's recovery token (connection/replay.ts), its identity for the hub. */
  get recoveryToken (): string | null {
    return this.seldom === null ? null : this.seldom.recoveryToken
  }

  set recoveryToken (token: string | null) {
    if (token !== null || this.seldom !== null) this.more().recoveryToken = token
  }

  get released (): boolean {
    return (this.flags & RELEASED) !== 0
  }

  get maxQueuedFrames (): number {
    return this.route.maxQueuedFrames
  }

  get maxQueuedBytes (): number {
    return this.route.maxQueuedBytes
  }

  /** Swept: a handler of this socket is running or frames wait for one. */
  get busy (): boolean {
    const router = this.router
    return router !== null && router.busy
  }

  private get log (): FastifyBaseLogger {
    return this.request.log
  }

  /** The authentication message to send when the socket opens (the handshake and the replay set it); `null` once open. */
  get message (): string | null {
    return this.opening === null ? null : this.opening.message
  }

  set message (text: string | null) {
    if (this.opening !== null) this.opening.message = text
  }

  /** A ping from the peer (with an idle timeout). */
  touch (): void {
    this.lastActivity = sinceEpoch(Date.now())
  }

  /** A pong from the peer (with a heartbeat). */
  ponged (): void {
    this.flags &= ~AWAITING_PONG
  }

  // ---------------------------------------------------------------- admission

  /** Takes the user's and the IP's slots; `false` when either is full. */
  admit (): boolean {
    return this.services.guard.acquire(this, this.request, this.userKey)
  }

  /**
   * Releases the connection if the upgrade's transport closes before the socket opens (a client that
   * resets while `groups()` is pending), or has closed already. `response` is the upgrade's
   * ServerResponse, which @fastify/websocket assigns to the transport: it repeats the transport's 'close'
   * and has no 'close' listener of its own, so listening there leaves nothing behind on the transport (a
   * third 'close' listener there grows its listener array for the socket's whole life).
   */
  watchTransport (raw: IncomingMessage, response?: ServerResponse): void {
    const transport = upgradeStream(raw)
    const opening = this.opening
    if (transport === undefined || opening === null) return
    if (transport.destroyed) {
      this.release()
      return
    }
    const watched: EventEmitter = response !== undefined && response.socket === transport ? response : transport
    const onClose = (): void => this.release()
    opening.watched = watched
    opening.onWatchedClose = onClose
    watched.on('close', onClose)
  }

  /** Joins the user's channel and every group; nothing once released. */
  async joinAll (groups: readonly string[]): Promise<void> {
    if (this.released) return
    const hub = this.services.hub
    if (groups.length === 0) {
      await hub.attach(this)
    } else {
      const joining: Promise<void>[] = [hub.attach(this)]
      for (let i = 0; i < groups.length; i++) joining.push(hub.join(this, groups[i] as string))
      await Promise.all(joining)
    }
    // Released meanwhile (the transport dropped): what the joins added is left again.
    if (this.released) this.leaveAll()
  }

  // ---------------------------------------------------------------- open

  /**
   * @fastify/websocket's 'connection': called once, synchronously, before the route's handler runs.
   */
  open (socket: WebSocket): void {
    const opening = this.opening
    if (this.released || opening === null) {
      socket.terminate()
      return
    }
    unwatch(opening)
    this.stage = null
    this.socket = socket
    carry(socket, this)
    socket.on('close', onSocketClose)
    const { guard } = this.services
    const limits = guard.limits
    const now = sinceEpoch(Date.now())
    this.lastActivity = now
    this.lastPing = now
    if (limits.heartbeatInterval > 0) socket.on('pong', onPong)
    if (limits.idleTimeout > 0) socket.on('ping', onPing)
    this.setExpiry(takeCredentialExpiry(this.request))
    if (this.route.reauthenticateInterval > 0) this.more().nextReauthentication = now + this.route.reauthenticateInterval
    guard.track(this)
    if (channels.connectionOpen.hasSubscribers) this.publish(channels.connectionOpen, 0)
    // What the groups received since the handshake joined them (a replay included) goes out right after the
    // message, corked: one write of the socket for all of them, not one per frame. It was bounded while it
    // waited (write, editPending), so it is not judged again here: corked, all of it would count as unsent.
    const pending = opening.pending
    if (pending !== null) corkSocket(socket)
    if (opening.message !== null) writeToSocket(socket, opening.message, 0, this.log)
    if (pending !== null) {
      for (let i = 0; i < pending.length; i++) writeToSocket(socket, pending[i] as string, 0, this.log)
      uncorkSocket(socket)
    }
    if (opening.closeCode !== 0) {
      this.close(opening.closeCode, opening.closeText)
      return
    }
    // Admitted before app.close() began, opened after its drain: told to come back elsewhere at once.
    if (guard.restarting) {
      this.close(CLOSE_SERVICE_RESTART, REASON_SERVICE_RESTART)
      return
    }
    // Synchronously, before ws can emit the first frame: nothing the client sent after the handshake is lost.
    const router = this.route.router
    if (router !== null || limits.idleTimeout > 0) socket.on('message', onFrame)
    if (router !== null && router.onAuthenticated !== undefined) this.routed()
  }

  /** The router state, made on first use (it starts routing at once when the route has no `onAuthenticated`). */
  private routed (): RouterConnection | null {
    const made = this.router
    if (made !== null) return made
    const router = this.route.router
    if (router === null || this.socket === null) return null
    const routed = new RouterConnection(router, this.socket, this)
    this.stage = routed
    routed.start()
    return routed
  }

  receive (data: RawFrame, isBinary: boolean): void {
    if (this.services.guard.limits.idleTimeout > 0) this.lastActivity = sinceEpoch(Date.now())
    if (this.route.router !== null) this.routed()!.receive(data, isBinary)
  }

  // ---------------------------------------------------------------- output

  /** ChannelMember: a broadcast, a message to the user. */
  send (data: string): void {
    this.write(data)
  }

  /** ChannelMember: one broadcast copy, followed by Chanx's `group_complete` on routes with `sendCompletion`. */
  sendCopy (data: string, frame?: SharedFrame): void {
    const router = this.route.router
    const completion = router !== null && router.sendCompletion ? completionOf(router) : null
    if (frame === undefined) {
      this.write(data)
      if (completion !== null) this.writeShared(completion)
    } else {
      // The copy and its `group_complete` in one write: framed once per broadcast, for every socket.
      this.writeShared(completion === null ? frame : frame.followedBy(completion))
    }
  }

  /**
   * `write` for a text that goes to many sockets: the same bytes, framed once, where ws would write them
   * unchanged (see core/ws-internals.ts), else `frame.text` through ws like any write. The same checks.
   */
  writeShared (frame: SharedFrame): void {
    const socket = this.socket
    if (socket === null || socket.readyState !== WebSocket.OPEN) {
      this.write(frame.text)
      if (frame.next !== null) this.write(frame.next.text)
      return
    }
    writeSharedToSocket(socket, frame, this.services.guard.limits.maxBufferedBytes, this.log)
  }

  /**
   * Replaces the output waiting for the socket to open by what `edit` makes of it (the replay puts the
   * missed messages first and drops the live copies it covers). `completion` is the `group_complete`
   * frame that follows each broadcast copy on this route, or null; `limit` the characters the output may
   * hold before the socket is closed as a slow reader (Infinity: no bound). Nothing once open or released.
   */
  editPending (edit: (pending: readonly string[], completion: string | null, limit: number) => string[]): void {
    const opening = this.opening
    if (this.socket !== null || opening === null || this.released) return
    const router = this.route.router
    const limit = this.services.guard.limits.maxBufferedBytes
    const next = edit(opening.pending ?? [], router !== null && router.sendCompletion ? router.replies.groupComplete : null,
      limit > 0 ? limit : Infinity)
    opening.pending = null
    opening.pendingBytes = 0
    for (let i = 0; i < next.length; i++) this.write(next[i]!)
  }

  /**
   * Every frame the server sends this socket goes through here. Before the socket opens it waits, up to
   * `maxBufferedBytes`; after, a socket whose unsent output passed that bound is a slow reader and is cut.
   */
  write (text: string): void {
    const socket = this.socket
    const limit = this.services.guard.limits.maxBufferedBytes
    if (socket === null) {
      const opening = this.opening
      if (opening === null || this.released || opening.closeCode !== 0) return
      // Bytes, as the limit and the slow-reader cut after open count them (not UTF-16 code units).
      opening.pendingBytes += Buffer.byteLength(text)
      if (limit > 0 && opening.pendingBytes > limit) {
        this.log.warn('fastify-chanx: output waiting for the socket to open passed maxBufferedBytes; it will be closed')
        opening.pending = null
        opening.pendingBytes = 0
        opening.closeCode = CLOSE_SLOW_READER
        opening.closeText = 'Slow reader'
        return
      }
      (opening.pending ??= []).push(text)
      return
    }
    writeToSocket(socket, text, limit, this.log)
  }

  /** Closes the socket (or, before it opens, as soon as it does). A close the peer does not complete is cut after CLOSE_GRACE. */
  close (code?: number, reason?: string): void {
    const socket = this.socket
    if (socket === null) {
      const opening = this.opening
      if (opening !== null && opening.closeCode === 0) {
        opening.closeCode = code ?? 1000
        opening.closeText = reason ?? ''
      }
      return
    }
    if (socket.readyState !== WebSocket.OPEN && socket.readyState !== WebSocket.CONNECTING) return
    try {
      socket.close(code, reason)
    } catch (err) {
      // An invalid code or reason from a handler: close cleanly instead.
      this.log.error({ err }, 'fastify-chanx: ctx.close was given an invalid code or reason')
      socket.close(1011)
    }
    this.more().killAt = sinceEpoch(Date.now() + CLOSE_GRACE)
    this.flags |= KILL_PENDING
  }

  /** Sends a refusal's authentication message (unless messages are off) and closes with 4000 + status. */
  refuse (statusCode: number, text: string, data: unknown): void {
    if (this.route.sendAuthenticationMessage) this.write(authenticationMessage(statusCode, text, data))
    this.close(refusalCloseCode(statusCode), closeReason(text))
  }

  // ---------------------------------------------------------------- groups

  get groups (): readonly string[] {
    return this.services.hub.groupsOf(this)
  }

  /** After release a join does nothing (and resolves): a closed socket never re-enters a group. */
  join (group: string): Promise<void> {
    // A join that is still pending at release is undone there: the hub records membership synchronously.
    if (this.released) return Promise.resolve()
    return guarded(this.services.hub.join(this, group), this.log)
  }

  leave (group: string): Promise<void> {
    return guarded(this.services.hub.leave(this, group), this.log)
  }

  broadcast (message: object, groups?: string | readonly string[], excludeSelf = true): Promise<void> {
    const hub = this.services.hub
    return settle(() => hub.broadcast(groups ?? hub.groupsOf(this), message, { sender: this, excludeSelf }), hub.failures, this.log)
  }

  sendEvent (name: string, payload: unknown, groups?: string | readonly string[]): Promise<void> {
    const hub = this.services.hub
    return settle(() => hub.sendEvent(groups ?? hub.groupsOf(this), name, payload), hub.failures, this.log)
  }

  onEvent (name: string, payload: unknown): void {
    // Only an event the route handles makes the router state of a socket that has sent nothing.
    if (this.router === null && this.route.router?.events?.get(name) === undefined) return
    this.routed()?.onEvent(name, payload)
  }

  private leaveAll (): void {
    this.services.hub.leaveAll(this).catch((err: unknown) => this.log.warn({ err }, 'fastify-chanx: leaving the groups of a closed socket failed'))
  }

  // ---------------------------------------------------------------- credentials

  /** Epoch ms at which the credentials lapse; `undefined`: never. */
  setExpiry (expiresAt: number | undefined): void {
    if (expiresAt === undefined) {
      this.flags &= ~HAS_EXPIRY
    } else {
      this.expiresAt = sinceEpoch(expiresAt)
      this.flags |= HAS_EXPIRY
    }
  }

  // ---------------------------------------------------------------- the sweep

  /** Visited by the guard's one timer, about every second (or each heartbeat/idle/re-authentication period). */
  sweep (epochNow: number): void {
    const socket = this.socket
    if (socket === null) return
    const now = sinceEpoch(epochNow)
    const flags = this.flags
    if (socket.readyState !== WebSocket.OPEN) {
      if ((flags & KILL_PENDING) !== 0 && now >= this.seldom!.killAt && socket.readyState === WebSocket.CLOSING) socket.terminate()
      return
    }
    const limits = this.services.guard.limits
    if (limits.maxBufferedBytes > 0 && socket.bufferedAmount > limits.maxBufferedBytes) {
      cutSlowReader(socket, this.log)
      return
    }
    if ((flags & HAS_EXPIRY) !== 0 && now >= this.expiresAt) {
      this.log.info('fastify-chanx: credentials expired, closing the socket')
      this.flags &= ~HAS_EXPIRY
      this.refuse(401, statusText(401), { detail: DETAIL_TOKEN_EXPIRED })
      return
    }
    if (limits.idleTimeout > 0 && now - this.lastActivity >= limits.idleTimeout) {
      this.close(CLOSE_IDLE, 'Idle timeout')
      return
    }
    const interval = this.route.reauthenticateInterval
    if (interval > 0 && now >= this.seldom!.nextReauthentication) {
      this.seldom!.nextReauthentication = now + interval
      if ((this.flags & REAUTHENTICATING) === 0) {
        this.flags |= REAUTHENTICATING
        reauthenticate(this, this.route.authenticator, this.services.userKey, this.route.reauthenticateTimeout).finally(() => { this.flags &= ~REAUTHENTICATING }).then(noop, noop)
      }
    }
    if (limits.heartbeatInterval > 0 && now - this.lastPing >= limits.heartbeatInterval) {
      if ((this.flags & AWAITING_PONG) !== 0) {
        socket.terminate()
        return
      }
      this.flags |= AWAITING_PONG
      this.lastPing = now
      socket.ping()
    }
  }

  // ---------------------------------------------------------------- release

  /** The socket's one 'close' listener. */
  closed (code: number): void {
    if (channels.connectionClose.hasSubscribers) this.publish(channels.connectionClose, code)
    this.release()
    // A socket that never sent a frame has no router state: it is made here only for an `onClose` to run.
    if (this.router !== null || this.route.router?.onClose !== undefined) this.routed()?.closedWith(code)
  }

  private publish (channel: Channel, code: number): void {
    const event: ConnectionEvent = { request: this.request, route: routeOf(this.request), code }
    channel.publish(event)
  }

  /** Gives back the slots, leaves every group, leaves the sweep. Idempotent; safe before the socket opened. */
  release (): void {
    if (this.released) return
    this.flags |= RELEASED
    const { guard } = this.services
    guard.release(this)
    guard.untrack(this)
    const opening = this.opening
    if (opening !== null) {
      opening.pending = null
      opening.pendingBytes = 0
      unwatch(opening)
    }
    this.leaveAll()
  }
}
