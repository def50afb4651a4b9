/**
 * The message router at work (DESIGN "Messages after the handshake"): after the handshake, every frame of a socket
 * is parsed safely, routed by its action to one TypeBox schema and one handler, and answered in Chanx's
 * error shapes when it cannot be. Per frame the work is one parse, one `Map` lookup and one compiled check, and errors are built only
 * when a check fails.
 *
 * Frames of one connection are handled in arrival order: a frame waits in the connection's queue while
 * an earlier frame's handler is still pending (`concurrency` lets more than one run), up to the route's
 * `maxQueuedFrames`. The socket's life (listeners, output, close, groups) belongs to its owner
 * (connection/connection.ts), which hands frames to the router and writes what the router answers.
 */
import type { FastifyRequest } from 'fastify'
import { WebSocket } from 'ws'
import { channels, routeOf, traceHandler, tracing, type FrameEvent, type FrameOutcome } from '../core/diagnostics'
import { TokenBucket } from '../core/limits'
import { isThenable } from '../core/validate'
import { corkSocket, uncorkSocket } from '../core/ws-internals'
import type { CompiledAction, MessageRouter } from './compile'
import { Context, type ConnectionOwner } from './context'
import { FrameQueue, type RawFrame } from './frame-queue'
import { broadcastRefusal, idJsonOf, OUTGOING_INVALID, prepare, withId } from './outgoing'
import { INVALID, safeParse } from './safe-json'
import type { SocketContext } from './types'
import { admitPayload, quoteTag } from './validation-errors'

export type { ConnectionOwner } from './context'

export type { RawFrame } from './frame-queue'

export const CLOSE_TOO_MANY_PENDING = 1008
export const REASON_TOO_MANY_PENDING = 'Too many pending messages'
export const REASON_TOO_MANY_PENDING_BYTES = 'Too many pending message bytes'

/** Seconds in a row with dropped frames after which a rate-limited socket is closed (1008). */
export const LIMITED_WINDOWS = 5

/** Marks a handler that threw synchronously. */
const THREW: unique symbol = Symbol('fastify-chanx.threw')

function noop (): void {}

/** One socket's router state: its frame queue, its rate limiter, its handlers' context. */
export class RouterConnection {
  ready = false
  closed = false
  inFlight = 0
  /** Frames waiting for an earlier handler (or onAuthenticated), in arrival order. */
  readonly queue = new FrameQueue()
  readonly ctx: Context
  /** The message-rate limiter, when the route has one. */
  readonly bucket: TokenBucket | null
  /** Frames the limiter dropped in the current one-second window, when it started, and how many windows in a row had drops. */
  dropped = 0
  dropWindowStart = 0
  limitedWindows = 0
  private boundSettled: ((value: unknown) => void) | null = null
  private boundFailed: ((error: unknown) => void) | null = null
  /** Frames dispatched so far; with the request id, the `messageId` of each frame's debug line. */
  frameSeq = 0
  /** Log each frame (Chanx's message_id and received_action) only when the logger would keep a debug line. */
  readonly traceFrames: boolean

  readonly request: FastifyRequest

  constructor (readonly router: MessageRouter, readonly socket: WebSocket, readonly owner: ConnectionOwner) {
    this.request = owner.request
    this.ctx = new Context(owner.request as FastifyRequest<{ Params: unknown }>, socket, this, owner)
    const limit = router.rateLimit
    this.bucket = limit === null ? null : new TokenBucket(limit.messagesPerSecond, limit.burst)
    this.traceFrames = owner.request.log.level === 'debug' || owner.request.log.level === 'trace'
  }

  // One pair per connection, not per frame, made when a handler first returns a promise.
  // They run as promise reactions: anything they threw would be an unhandled rejection, which ends Node.
  get onSettled (): (value: unknown) => void {
    this.boundSettled ??= (value) => this.settled(value, null)
    return this.boundSettled
  }

  get onFailed (): (error: unknown) => void {
    this.boundFailed ??= (error) => this.failed(error, null)
    return this.boundFailed
  }

  /** A pending handler resolved: send its reply (tagged with the frame's `id`, if any) and move on. */
  settled (value: unknown, idJson: string | null): void {
    try { this.inFlight--; this.finish(value, idJson); this.pump() } catch (err) { this.broken(err) }
  }

  failed (error: unknown, idJson: string | null): void {
    try { this.inFlight--; this.fail(error, idJson); this.complete(idJson); this.pump() } catch (err) { this.broken(err) }
  }

  get open (): boolean {
    return !this.closed && this.socket.readyState === WebSocket.OPEN
  }

  /** A handler is running or frames wait for one (the drain on `app.close()` waits for these). */
  get busy (): boolean {
    return (this.inFlight > 0 || this.queue.length > 0) && this.open
  }

  /** Starts routing: at once, or once the route's `onAuthenticated` hook has settled. */
  start (): void {
    if (this.router.onAuthenticated === undefined) {
      this.ready = true
      return
    }
    let result: unknown
    try {
      result = this.router.onAuthenticated!(this.ctx)
    } catch (err) {
      this.hookFailed(err)
      return
    }
    whenSettled(result, () => { this.ready = true; this.pump() }, (err: unknown) => this.hookFailed(err))
  }

  /** A fault of the router itself while finishing a frame: log it and end this connection, not the process. */
  broken (err: unknown): void {
    this.request.log.error({ err }, 'fastify-chanx: the router failed while finishing a frame; closing the socket')
    this.close(1011, 'Internal error')
  }

  /**
   * A frame over the rate: answered with an error and dropped. The socket is closed with 1008 when more than
   * `burst` frames are dropped within one second (a flood), or when frames are dropped in each of
   * `LIMITED_WINDOWS` seconds in a row (a client that stays over the rate, however slightly).
   */
  rateLimited (): void {
    const limit = this.router.rateLimit!
    const now = Date.now()
    if (now - this.dropWindowStart >= 1000) {
      this.limitedWindows = now - this.dropWindowStart < 2000 ? this.limitedWindows + 1 : 1
      this.dropWindowStart = now
      this.dropped = 0
    }
    if (++this.dropped > limit.burst || this.limitedWindows >= LIMITED_WINDOWS) {
      this.request.log.warn('fastify-chanx: message rate limit exceeded for too long; closing the socket')
      this.close(1008, 'Rate limit exceeded')
      return
    }
    this.sendRaw(this.router.replies.rateLimited)
  }

  /** A channel event for this socket: checked against its schema, then its handler runs (errors logged). */
  onEvent (name: string, payload: unknown): void {
    if (!this.open) return
    const event = this.router.events?.get(name)
    if (event === undefined) return
    if (!event.check.Check(payload)) {
      this.request.log.warn({ event: name }, 'fastify-chanx: a channel event does not match its schema; not handled')
      this.complete()
      return
    }
    let result: unknown
    try {
      result = event.handler(payload, this.ctx as unknown as SocketContext)
    } catch (err) {
      this.request.log.error({ err, event: name }, 'fastify-chanx: a channel event handler failed')
      this.complete()
      return
    }
    // As Chanx's handle_channel_event: `complete` follows every event, handled or failed, when completion is on.
    whenSettled(result,
      (value) => { if (value !== undefined) this.sendMessage(value); this.complete() },
      (err: unknown) => { this.request.log.error({ err, event: name }, 'fastify-chanx: a channel event handler failed'); this.complete() })
  }

  hookFailed (err: unknown): void {
    this.request.log.error({ err }, 'fastify-chanx: onAuthenticated failed; closing the socket')
    this.close(1011, 'Internal error')
  }

  receive (data: RawFrame, isBinary: boolean): void {
    if (!this.open) {
      if (channels.frame.hasSubscribers) publishFrame(this, null, 'dropped')
      return
    }
    const size = byteLength(data)
    if (size > this.router.maxPayload) {
      this.close(1009, 'Message too big')
      return
    }
    if (this.bucket !== null && !this.bucket.take()) {
      if (channels.frame.hasSubscribers) publishFrame(this, null, 'rate_limited')
      this.rateLimited()
      return
    }
    const queue = this.queue
    if (this.ready && this.inFlight < this.router.concurrency && queue.length === 0) {
      dispatch(this, data, isBinary)
      return
    }
    const owner = this.owner
    const cap = owner.maxQueuedFrames
    if (cap > 0 && queue.length >= cap) {
      this.overflow('too many frames wait for a handler', REASON_TOO_MANY_PENDING)
      return
    }
    const byteCap = owner.maxQueuedBytes
    if (byteCap > 0 && queue.bytes + size > byteCap) {
      this.overflow('the frames waiting for a handler exceed maxQueuedBytes', REASON_TOO_MANY_PENDING_BYTES)
      return
    }
    queue.push(data, isBinary, size)
  }

  /** The frame that would overflow the queue is dropped with the queued ones, and the socket is closed with 1008. */
  private overflow (why: string, reason: string): void {
    if (channels.frame.hasSubscribers) publishFrame(this, null, 'dropped')
    this.request.log.warn(`fastify-chanx: ${why}; closing the socket`)
    this.close(CLOSE_TOO_MANY_PENDING, reason)
  }

  /** Frames still queued when the socket closes are never handled: each is reported `dropped`. */
  private dropQueued (): void {
    const dropped = this.queue.clear()
    if (!channels.frame.hasSubscribers) return
    for (let i = 0; i < dropped; i++) publishFrame(this, null, 'dropped')
  }

  /** Dispatches queued frames while the route's concurrency allows. */
  pump (): void {
    const queue = this.queue
    while (this.ready && this.inFlight < this.router.concurrency && queue.length > 0) {
      if (!this.open) break
      const isBinary = queue.nextIsBinary
      dispatch(this, queue.shift(), isBinary)
    }
    if (queue.length > 0 && !this.open) this.dropQueued()
  }

  /** A handler's reply, then `complete`: one system call for both when both go out (see ws-internals). */
  finish (value: unknown, idJson: string | null): void {
    if (value === undefined || !this.router.sendCompletion || !this.open) {
      this.reply(value, idJson)
      this.complete(idJson)
      return
    }
    const socket = this.socket
    corkSocket(socket)
    try {
      this.sendMessage(value, idJson)
      this.complete(idJson)
    } finally {
      uncorkSocket(socket)
    }
  }

  reply (value: unknown, idJson: string | null = null): void {
    if (value !== undefined) this.sendMessage(value, idJson)
  }

  fail (err: unknown, idJson: string | null = null): void {
    this.request.log.error({ err }, 'fastify-chanx: a message handler failed')
    this.sendRaw(withId(this.router.replies.handlerFailed, idJson))
  }

  complete (idJson: string | null = null): void {
    if (this.router.sendCompletion) this.sendRaw(withId(this.router.replies.complete, idJson))
  }

  sendRaw (text: string): void {
    if (this.open) this.owner.write(text)
  }

  /** Sends a handler's message: checked against `outgoing` when asked, serialized once. */
  /**
   * Checked by `ctx.broadcast` before anything is sent (validateOutgoing): null, or the rejected promise the
   * broadcast answers with. The refusal is logged, as a reply's is, and handled, so that an unawaited
   * broadcast cannot become an unhandled rejection (which ends the process).
   */
  refuseBroadcast (message: unknown): Promise<void> | null {
    const err = broadcastRefusal(this.router, message)
    if (err === null) return null
    this.request.log.error({ err }, 'fastify-chanx: a broadcast does not match its outgoing schema; not delivered')
    const refused = Promise.reject(err)
    refused.catch(noop)
    return refused
  }

  sendMessage (message: unknown, idJson: string | null = null): void {
    if (!this.open) return
    const text = prepare(this.router, message, idJson)
    if (text === OUTGOING_INVALID) {
      this.request.log.error('fastify-chanx: an outgoing message does not match its outgoing schema; not sent')
    } else if (text === undefined) {
      this.request.log.error('fastify-chanx: an outgoing message could not be serialized to JSON; not sent')
    } else {
      this.owner.write(text)
    }
  }

  close (code?: number, reason?: string): void {
    this.closed = true
    this.dropQueued()
    this.owner.close(code, reason)
  }

  closedWith (code: number): void {
    this.closed = true
    this.dropQueued()
    const onClose = this.router.onClose
    if (onClose === undefined) return
    let result: unknown
    try {
      result = onClose(this.ctx, code)
    } catch (err) {
      this.request.log.error({ err }, 'fastify-chanx: onClose failed')
      return
    }
    whenSettled(result, noop, (err: unknown) => this.request.log.error({ err }, 'fastify-chanx: onClose failed'))
  }
}

/** Runs `onValue` with `result`, at once, or once it settles when it is a thenable (`onError` if it rejects). */
function whenSettled (result: unknown, onValue: (value: unknown) => void, onError: (err: unknown) => void): void {
  if (isThenable(result)) Promise.resolve(result).then(onValue, onError)
  else onValue(result)
}

function byteLength (data: RawFrame): number {
  if (Array.isArray(data)) {
    let length = 0
    for (let i = 0; i < data.length; i++) length += (data[i] as Buffer).length
    return length
  }
  return data.byteLength
}

function toText (data: RawFrame): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8')
  return data.toString('utf8')
}

/**
 * Calls a handler (inside the `fastify-chanx.handler` TracingChannel when it has subscribers); a synchronous
 * throw becomes `THREW` so the caller needs no try/catch of its own.
 */
function invoke (connection: RouterConnection, handler: CompiledAction['handler'], message: unknown, idJson: string | null, action: string): unknown {
  try {
    if (!tracing.handler.hasSubscribers) return handler(message, connection.ctx as SocketContext)
    const request = connection.request
    return traceHandler({ request, route: routeOf(request), action }, () => handler(message, connection.ctx as SocketContext))
  } catch (err) {
    connection.fail(err, idJson)
    return THREW
  }
}

/** One frame: parse, look up, check, handle. Answers every failure and keeps the connection open. */
function dispatch (connection: RouterConnection, data: RawFrame, isBinary: boolean): void {
  const router = connection.router
  const replies = router.replies
  if (isBinary && !router.acceptBinary) {
    if (channels.frame.hasSubscribers) publishFrame(connection, null, 'binary')
    connection.sendRaw(replies.binary)
    connection.complete()
    return
  }
  const value = safeParse(toText(data), router.maxDepth)
  if (value === INVALID || value === null || typeof value !== 'object' || Array.isArray(value)) {
    if (channels.frame.hasSubscribers) publishFrame(connection, null, 'invalid_json')
    connection.sendRaw(replies.invalidJson)
    connection.complete()
    return
  }
  const message = value as Record<string, unknown>
  const tag = message[router.actionKey]
  if (connection.traceFrames) traceFrame(connection, tag)
  // Request/reply correlation (docs/protocol.md): a frame's `id` is echoed on everything it causes.
  let idJson: string | null = null
  if (message.id !== undefined) {
    const json = idJsonOf(message.id)
    if (json === undefined) {
      if (channels.frame.hasSubscribers) publishFrame(connection, tag, 'invalid_id')
      connection.sendRaw(replies.invalidId)
      connection.complete()
      return
    }
    idJson = json
  }
  const action = typeof tag === 'string' ? router.actions.get(tag) : undefined
  if (action === undefined) {
    if (channels.frame.hasSubscribers) publishFrame(connection, tag, tag === 'ping' || (tag === 'authenticate' && router.refreshCredentials !== null) ? 'handled' : 'unknown_action')
    if (tag === 'ping') connection.sendRaw(withId(replies.pong, idJson))
    else if (tag === 'authenticate' && router.refreshCredentials !== null) {
      // In-band token refresh: handled in the frame queue, like a handler, so later frames wait for it.
      connection.inFlight++
      router.refreshCredentials(connection.request, message.payload, connection.owner).then(connection.onSettled, connection.onFailed)
      return
    } else if (tag === undefined) connection.sendRaw(withId(replies.tagNotFound, idJson))
    else connection.sendRaw(withId(tagInvalid(router, tag), idJson))
    connection.complete(idJson)
    return
  }
  const payload = message.payload
  if (payload === undefined || !action.check.Check(payload)) {
    // Only on failure: pydantic's lax conversions, or the error list (validation-errors.ts).
    const errors = admitPayload(action, message)
    if (errors !== null) {
      if (channels.frame.hasSubscribers) publishFrame(connection, tag, 'validation_error')
      connection.sendRaw(withId(replies.errorPrefix + errors + '}', idJson))
      connection.complete(idJson)
      return
    }
  }
  const result = invoke(connection, action.handler, message, idJson, tag as string)
  if (channels.frame.hasSubscribers) publishOutcome(connection, tag as string, result)
  if (result === THREW) {
    connection.complete(idJson)
  } else if (isThenable(result)) {
    connection.inFlight++
    // A foreign thenable's `then` may throw: Promise.resolve turns that into a rejection.
    const promise = result instanceof Promise ? result : Promise.resolve(result)
    if (idJson === null) promise.then(connection.onSettled, connection.onFailed)
    else settleTagged(connection, promise, idJson)
  } else {
    connection.finish(result, idJson)
  }
}

/** A pending handler of a frame with an `id`: its own pair of reactions carries the id (only such frames pay). */
function settleTagged (connection: RouterConnection, promise: Promise<unknown>, idJson: string): void {
  promise.then((value) => connection.settled(value, idJson), (error: unknown) => connection.failed(error, idJson))
}

function publishFrame (connection: RouterConnection, action: unknown, outcome: FrameOutcome): void {
  const event: FrameEvent = { request: connection.request, route: routeOf(connection.request), action: typeof action === 'string' ? action : null, outcome }
  channels.frame.publish(event)
}

/** A handled frame's outcome: at once, or once its handler's promise settled. */
function publishOutcome (connection: RouterConnection, action: string, result: unknown): void {
  if (result === THREW) publishFrame(connection, action, 'failed')
  else if (isThenable(result)) Promise.resolve(result).then(() => publishFrame(connection, action, 'handled'), () => publishFrame(connection, action, 'failed'))
  else publishFrame(connection, action, 'handled')
}

/** Chanx's per-frame log context (`message_id`, `received_action`), as a debug line in the connection's logger (its reqId included). */
function traceFrame (connection: RouterConnection, tag: unknown): void {
  connection.request.log.debug({ messageId: `${connection.request.id}-${++connection.frameSeq}`, receivedAction: quoteTag(tag) }, 'fastify-chanx: received frame')
}

function tagInvalid (router: MessageRouter, tag: unknown): string {
  const replies = router.replies
  return replies.errorPrefix + JSON.stringify([{
    type: 'union_tag_invalid',
    loc: [],
    msg: replies.tagInvalidPrefix + quoteTag(tag) + replies.tagInvalidSuffix
  }]) + '}'
}
