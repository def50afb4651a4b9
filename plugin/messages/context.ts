import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { CredentialHolder } from '../core/credentials'
import type { BroadcastTarget, LooseContext } from './types'

/** What the router needs of the connection that owns the socket (its credentials too, for the in-band refresh). */
export interface ConnectionOwner extends CredentialHolder {
  readonly request: FastifyRequest
  /** Frames that may wait in the queue (0: no cap); one more closes the socket with 1008. */
  readonly maxQueuedFrames: number
  /** Bytes those frames may hold together (0: no cap); past it the socket is closed with 1008. */
  readonly maxQueuedBytes: number
  readonly groups: readonly string[]
  /** Sends one text frame, if the socket is open and keeps up (slow readers are closed there). */
  write (text: string): void
  close (code?: number, reason?: string): void
  join (group: string): Promise<void>
  leave (group: string): Promise<void>
  broadcast (message: object, groups?: string | readonly string[], excludeSelf?: boolean): Promise<void>
  sendEvent (name: string, payload: unknown, groups?: string | readonly string[]): Promise<void>
}

/** What a context's `send` and `close` reach: the socket's router state. */
export interface ContextTarget {
  sendMessage (message: unknown): void
  /** The rejection `ctx.broadcast` answers when `message` may not be broadcast (validateOutgoing), else null. */
  refuseBroadcast (message: unknown): Promise<void> | null
  close (code?: number, reason?: string): void
}

/** The context handed to handlers and hooks; one per connection. */
export class Context implements LooseContext {
  readonly params: unknown
  private boundSend: ((message: unknown) => void) | null = null
  private boundClose: ((code?: number, reason?: string) => void) | null = null

  constructor (
    readonly request: FastifyRequest<{ Params: unknown }>,
    readonly socket: WebSocket,
    /** The socket's router state (messages/dispatch.ts); not part of the handlers' type, read by tests. */
    readonly connection: ContextTarget,
    private readonly owner: ConnectionOwner
  ) {
    this.params = request.params
  }

  // Bound on first use and kept, so `const { send } = ctx` works too and `ctx.send === ctx.send`; an idle
  // socket whose handlers never read them holds no closure.
  get send (): (message: unknown) => void {
    const connection = this.connection
    this.boundSend ??= (message) => connection.sendMessage(message)
    return this.boundSend
  }

  get close (): (code?: number, reason?: string) => void {
    const connection = this.connection
    this.boundClose ??= (code, reason) => connection.close(code, reason)
    return this.boundClose
  }

  broadcast (message: object, options?: BroadcastTarget): Promise<void> {
    return this.connection.refuseBroadcast(message) ?? this.owner.broadcast(message, options?.groups, options?.excludeSelf)
  }

  sendEvent (name: string, payload?: unknown, options?: { groups?: string | readonly string[] }): Promise<void> {
    return this.owner.sendEvent(name, payload, options?.groups)
  }

  join (group: string): Promise<void> {
    return this.owner.join(group)
  }

  leave (group: string): Promise<void> {
    return this.owner.leave(group)
  }

  get groups (): readonly string[] {
    return this.owner.groups
  }

  /** Read from the request, so a re-authentication that replaces the user is seen. */
  get user (): unknown {
    return this.request.user
  }

  get obj (): unknown {
    return this.request.obj
  }
}
