/**
 * The client side of a fastify-chanx socket route, for browsers and Node: the handshake as a promise,
 * reconnection that follows the close codes (policy.ts), requests correlated by a frame `id`, the in-band
 * token refresh before a JWT expires, and an optional ping that finds a dead path. No Node-only import.
 */
import { ChanxClientError, ChanxRefusal } from './errors'
import { defaultPolicy } from './policy'
import type {
  ActionOf, ClientOptions, ClientRoute, CloseInfo, IncomingAction, KeyOf, MessageWith, PayloadOf, Received,
  RecoveryInfo, RefusalInfo, TokenReason, WebSocketLike
} from './types'
import { defaultWebSocket } from './websocket'
import { encodeResume, isObject, isPosition, MAX_RESUME_LENGTH, mergeResume, NOT_SENT, type ResumeState } from './resume-state'

/** The events a client emits; `message:<action>` gets only the messages of that action. */
export type ClientEvents<Route> = {
  /**
   * Authenticated (status 200); `reconnected` after the first time. On a route with history, `recovery`
   * says whether every message missed while away was replayed (docs/recovery.md); absent otherwise.
   */
  open: (info: { reconnected: boolean, recovery?: RecoveryInfo }) => void
  /** Every message except the authentication message and replies to `request` (a late reply is dropped). */
  message: (message: Received<Route>) => void
  /** A socket closed and the policy retries after `delay` ms (0: at once with a fresh token, after a 4401). */
  reconnecting: (info: { attempt: number, delay: number, code: number, reason: string }) => void
  /** The server refused the handshake (or a refresh); `closed` follows when the policy stops. */
  refused: (refusal: ChanxRefusal) => void
  /** The client stopped: the policy said so, or `close()` was called. `queued` frames are kept for the next `connect()`. */
  closed: (info: { code: number, reason: string, queued: number }) => void
  /** An in-band token refresh was accepted. */
  refreshed: () => void
} & {
  [A in ActionOf<Received<Route>, KeyOf<Route>> as `message:${A}`]: (message: MessageWith<Received<Route>, KeyOf<Route>, A>) => void
}

type Listener = (value: never) => void

interface Pending {
  resolve: (message: never) => void
  reject: (error: Error) => void
  timer: ReturnType<typeof setTimeout>
}

const OPEN = 1
/** setTimeout fires at once past this many ms. */
const MAX_DELAY = 2147483647
/** The in-band refresh never runs more often than this (ms). */
const MIN_REFRESH = 1000

type Json = Record<string, unknown>
const text = (value: unknown): string => typeof value === 'string' ? value : ''

export class ChanxClient<Route extends ClientRoute = ClientRoute> {
  /** `idle` before `connect()`, `connecting` until authenticated, `open`, or `closed` once the policy stopped. */
  state: 'idle' | 'connecting' | 'open' | 'closed' = 'idle'
  private ws: WebSocketLike | null = null
  private readonly listeners = new Map<string, Set<Listener>>()
  private readonly queue: string[] = []
  private readonly pending = new Map<number, Pending>()
  private readonly waiters: Array<{ resolve: () => void, reject: (error: Error) => void }> = []
  private readonly key: string
  private nextId = 0
  /** Bumped by every dial and by `close()`: an attempt that finds it changed after an await is stale. */
  private gen = 0
  private attempt = 0
  private wasOpen = false
  private afterRefresh = false
  private refusal: ChanxRefusal | null = null
  /** The HTTP status of a refused upgrade (seen only through `ws`'s error), 0 otherwise. */
  private httpStatus = 0
  private token: string | null | undefined = null
  /** When `getToken` returned the token (ms), and when the socket was authenticated (0: not open). */
  private tokenAt = 0
  private openedAt = 0
  /** When the handshakes of the last minute started: at most `backoff.maxPerMinute` of them. */
  private readonly dials: number[] = []
  private timer: ReturnType<typeof setTimeout> | undefined
  private refreshTimer: ReturnType<typeof setTimeout> | undefined
  private pingTimer: ReturnType<typeof setInterval> | undefined
  private pongTimer: ReturnType<typeof setTimeout> | undefined
  private lastReceived = 0
  /**
   * On a route with history: whether the last reconnection recovered every missed message (true), did not
   * (false: refetch what the app shows; `recovery.reason` says why), or no resume was made yet (null).
   */
  recovered: boolean | null = null
  /** The last authentication's recovery outcome; null before it, or on a route without history. */
  recovery: RecoveryInfo | null = null
  /** The recovery token and the last positions, sent back on every reconnection. */
  private resume: ResumeState | null = null
  /** The groups whose position did not fit in the last handshake's resume parameter (reported not recovered). */
  private unsent: string[] = []
  /** The resume parameter's bound: `maxResumeLength`, halved after each 431 (resume-state.ts). */
  private resumeLimit: number

  constructor (readonly url: string, readonly options: ClientOptions & { actionKey?: KeyOf<Route> } = {}) {
    this.key = options.actionKey ?? 'action'
    const limit = options.maxResumeLength ?? MAX_RESUME_LENGTH
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new ChanxClientError('FST_CHANX_CLIENT_INVALID_OPTION', 'maxResumeLength: not a whole number >= 0')
    }
    this.resumeLimit = limit
  }

  /** Opens the socket; resolves once authenticated (status 200), rejects with a `ChanxRefusal` when the policy stops. */
  connect (): Promise<void> {
    if (this.state === 'open') return Promise.resolve()
    const promise = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }))
    if (this.state !== 'connecting') {
      this.state = 'connecting'
      this.attempt = 0
      this.afterRefresh = false
      this.dial('connect')
    }
    return promise
  }

  /** Sends a message; queued while disconnected (up to `maxQueued`, then it throws). */
  send<A extends IncomingAction<Route>> (action: A, payload: PayloadOf<Route, A>): void {
    this.write(JSON.stringify({ [this.key]: action, payload }))
  }

  /** Sends a message with an `id` and resolves with the reply to it (rejects on an error reply or after `requestTimeout`). */
  request<A extends IncomingAction<Route>> (action: A, payload: PayloadOf<Route, A>, options: { timeout?: number } = {}): Promise<Received<Route>> {
    const id = ++this.nextId
    const timeout = options.timeout ?? this.options.requestTimeout ?? 10000
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new ChanxClientError('FST_CHANX_CLIENT_TIMEOUT', `Request "${action}" (id ${id}) got no reply within ${timeout} ms`))
      }, timeout)
      this.pending.set(id, { resolve, reject, timer })
      try {
        this.write(JSON.stringify({ [this.key]: action, payload, id }))
      } catch (err) {
        clearTimeout(timer)
        this.pending.delete(id)
        reject(err instanceof Error ? err : new Error(String(err)))
      }
    })
  }

  /** Listens to an event; returns the function that stops listening. */
  on<E extends keyof ClientEvents<Route> & string> (event: E, listener: ClientEvents<Route>[E]): () => void {
    let set = this.listeners.get(event)
    if (set === undefined) this.listeners.set(event, set = new Set())
    set.add(listener as Listener)
    return () => { set.delete(listener as Listener) }
  }

  /**
   * Closes the socket for good (1000) and ends the session: pending requests reject, queued frames are
   * dropped, an attempt still waiting for `getToken` is abandoned, and the resume state, the recovery outcome
   * and the "was open" flag are forgotten, so a later `connect()` starts a new session (docs/client.md).
   */
  close (): void {
    const ws = this.ws
    this.gen++
    this.stop(1000, '', new ChanxClientError('FST_CHANX_CLIENT_CLOSED', 'The client was closed'), true)
    if (ws !== null && ws.readyState <= OPEN) ws.close(1000)
    this.resume = this.recovery = this.recovered = null
    this.unsent = []
    this.resumeLimit = this.options.maxResumeLength ?? MAX_RESUME_LENGTH
    this.wasOpen = false
  }

  private emit (event: string, value: unknown): void {
    const set = this.listeners.get(event)
    if (set !== undefined) for (const listener of set) (listener as (value: unknown) => void)(value)
  }

  private write (text: string): void {
    // A socket that is closing (its close event not yet here) would lose the frame: queue it instead.
    if (this.state === 'open' && this.ws !== null && this.ws.readyState === OPEN) {
      this.ws.send(text)
      return
    }
    if (this.queue.length >= (this.options.maxQueued ?? 100)) {
      throw new ChanxClientError('FST_CHANX_CLIENT_QUEUE_FULL', `Disconnected, and ${this.queue.length} frames already wait: not sent`)
    }
    this.queue.push(text)
  }

  private async dial (reason: TokenReason): Promise<void> {
    const options = this.options
    const gen = ++this.gen
    let url = this.url
    let protocols = options.protocols
    let token: string | null | undefined = null
    try {
      if (options.getToken !== undefined) token = await options.getToken(reason)
    } catch {}
    // close() (and maybe connect()) came while getToken ran: this attempt is not the current one.
    if (gen !== this.gen || this.state !== 'connecting') return
    this.token = token
    this.tokenAt = Date.now()
    this.dials.push(this.tokenAt)
    this.unsent = []
    if (this.resume !== null) url += (url.includes('?') ? '&' : '?') + 'chanx_recover=' + encodeResume(this.resume, this.resumeLimit, this.unsent)
    if (token != null && token !== '') {
      if (options.tokenIn === 'protocol') {
        // The server never echoes the credential: another value must be offered for it to select.
        protocols = ['bearer.' + token, ...(protocols === undefined ? ['chanx'] : typeof protocols === 'string' ? [protocols] : protocols)]
      } else {
        url += (url.includes('?') ? '&' : '?') + (options.tokenParam ?? 'token') + '=' + encodeURIComponent(token)
      }
    }
    let ws: WebSocketLike
    try {
      ws = new (options.WebSocket ?? defaultWebSocket())(url, protocols)
    } catch (err) {
      this.stop(1006, '', err as Error, false)
      return
    }
    this.ws = ws
    this.refusal = null
    this.httpStatus = 0
    // A socket that is no longer the current one is closed at once, whatever it says.
    const stale = (): boolean => {
      if (this.ws === ws) return false
      ws.close()
      return true
    }
    ws.onopen = () => { if (!stale() && options.noAuthenticationMessage === true) this.opened() }
    ws.onmessage = (event) => { if (!stale()) this.received(event.data) }
    ws.onclose = (event) => {
      const status = this.httpStatus
      if (this.ws === ws) this.closed(status > 0 ? 4000 + status : event.code, status > 0 ? this.refusal!.statusText : event.reason)
    }
    ws.onerror = (event) => {
      // `ws` reports a refused upgrade as "Unexpected server response: 431"; browsers never tell the status.
      const status = Number(/response: (4\d\d)/.exec(text((event as { message?: unknown } | null)?.message))?.[1])
      if (this.ws !== ws || !(status > 0)) return
      this.httpStatus = status
      // Too large: the next tries send fewer positions (those left out are reported not recovered), and
      // when even none was too many, no resume at all.
      if (status === 431) {
        if (this.resume !== null && this.unsent.length < Object.keys(this.resume.g).length) this.resumeLimit = Math.floor(this.resumeLimit / 2)
        else this.resume = null
      }
      this.refusal = new ChanxRefusal(status, 'HTTP ' + status, status === 431 ? 'The resume or the URL was too large' : 'The upgrade was refused', 4000 + status)
    }
  }

  /** A frame from the server: whatever it holds, it is used or ignored, never thrown on (docs/client.md). */
  private received (data: unknown): void {
    this.lastReceived = Date.now()
    if (this.pongTimer !== undefined) { clearTimeout(this.pongTimer); this.pongTimer = undefined }
    let message: unknown
    try {
      message = JSON.parse(data as string)
    } catch {
      return
    }
    if (!isObject(message)) return
    const action = message[this.key]
    if (action === 'authentication') {
      this.authentication(message)
      return
    }
    // Only a reply to this connection's own frame carries an `id` (the server strips it from everything
    // else): settle its request, or drop it when the request already timed out or was answered.
    if (message.id !== undefined) {
      const pending = this.pending.get(message.id as number)
      if (pending !== undefined) {
        this.pending.delete(message.id as number)
        clearTimeout(pending.timer)
        if (action === 'error') pending.reject(new ChanxClientError('FST_CHANX_CLIENT_ERROR_REPLY', 'The server answered with an error: ' + JSON.stringify(message.payload), message.payload))
        else pending.resolve(message as never)
      }
      return
    }
    const resume = this.resume
    if (resume !== null) {
      const positions = message.chanx_pos
      if (isObject(positions)) {
        for (const group of Object.keys(positions)) {
          if (Object.hasOwn(resume.g, group) && isPosition(positions[group])) resume.g[group] = positions[group]
        }
      }
      if (isPosition(message.chanx_upos)) resume.u = message.chanx_upos
    }
    this.emit('message', message)
    if (typeof action === 'string') this.emit('message:' + action, message)
  }

  private authentication (message: Json): void {
    const payload = isObject(message.payload) ? message.payload : {}
    const status = typeof payload.status_code === 'number' ? payload.status_code : 0
    if (status === 200) {
      const recovery = message.chanx_recovery
      if (isObject(recovery) && typeof recovery.token === 'string' && isObject(recovery.positions)) {
        // Merged, not replaced: a stream the server could not read keeps its old position (resume-state.ts).
        this.resume = mergeResume(this.resume, recovery as Json & { token: string, positions: Json })
        let recovered = typeof recovery.recovered === 'boolean' ? recovery.recovered : null
        let reason = text(recovery.reason) || null
        const failed: Record<string, string> = { ...(isObject(recovery.failed) ? recovery.failed : {}) as Record<string, string> }
        // Groups left out of the resume were not asked for: the client reports them itself.
        if (recovered !== null && this.unsent.length > 0) {
          for (const group of this.unsent) failed[group] ??= NOT_SENT
          recovered = false
          reason ??= NOT_SENT
        }
        this.recovered = recovered
        this.recovery = { recovered, reason, failed, userFailed: text(recovery.user_failed) || null }
      }
      if (this.state === 'open') {
        this.emit('refreshed', undefined)
        this.scheduleRefresh()
      } else {
        this.opened()
      }
      return
    }
    const data = isObject(payload.data) ? payload.data : {}
    this.refusal = new ChanxRefusal(status, text(payload.status_text), text(data.detail), 4000 + status)
  }

  private opened (): void {
    const reconnected = this.wasOpen
    this.state = 'open'
    this.wasOpen = true
    this.openedAt = Date.now()
    const ws = this.ws!
    for (let i = 0; i < this.queue.length; i++) ws.send(this.queue[i] as string)
    this.queue.length = 0
    this.scheduleRefresh()
    const ping = this.options.ping
    if (ping !== undefined && this.pingTimer === undefined) {
      this.lastReceived = Date.now()
      this.pingTimer = setInterval(() => this.pingIfIdle(ping.interval, ping.timeout), ping.interval)
    }
    const waiters = this.waiters.splice(0)
    for (const waiter of waiters) waiter.resolve()
    this.emit('open', this.recovery === null ? { reconnected } : { reconnected, recovery: this.recovery })
  }

  private pingIfIdle (interval: number, timeout: number): void {
    if (this.state !== 'open' || this.pongTimer !== undefined || Date.now() - this.lastReceived < interval) return
    this.ws!.send(JSON.stringify({ [this.key]: 'ping', payload: null }))
    this.pongTimer = setTimeout(() => {
      // No frame since the ping: the path is dead, and a close handshake would never finish either.
      const ws = this.ws!
      this.pongTimer = undefined
      this.ws = null
      ws.close(4000, 'Ping timeout')
      this.closed(1006, 'Ping timeout')
    }, timeout)
  }

  /**
   * Arms the in-band refresh `refreshBeforeExpiry` ms before the token expires, or at half its life when it
   * lives less than twice that, and never sooner than MIN_REFRESH. The life left is `exp - iat` counted from
   * when getToken returned the token (both the issuer's clock: the client's clock does not matter), or
   * `exp` against the local clock for a token without `iat`.
   */
  private scheduleRefresh (): void {
    clearTimeout(this.refreshTimer)
    const before = this.options.refreshBeforeExpiry ?? 30000
    const claims = claimsOf(this.token)
    const exp = claims.exp
    if (this.options.getToken === undefined || before <= 0 || typeof exp !== 'number') return
    const left = (typeof claims.iat === 'number' ? (exp - claims.iat) * 1000 + this.tokenAt : exp * 1000) - Date.now()
    const delay = Math.max(left - before, left / 2, MIN_REFRESH)
    this.refreshTimer = setTimeout(() => {
      if (delay > MAX_DELAY) this.scheduleRefresh()
      else this.refresh()
    }, Math.min(delay, MAX_DELAY))
  }

  private async refresh (): Promise<void> {
    const ws = this.ws
    let token: string | null | undefined
    try {
      token = await this.options.getToken!('refresh')
    } catch {
      return
    }
    if (this.ws !== ws || this.state !== 'open' || token == null) return
    this.token = token
    this.tokenAt = Date.now()
    ws!.send(JSON.stringify({ [this.key]: 'authenticate', payload: { token } }))
  }

  private closed (code: number, reason: string): void {
    this.ws = null
    this.clearTimers()
    // A connection open for `resetAfter` ms proved healthy: the backoff and the 4401 rule start over.
    const backoff = this.options.backoff ?? {}
    if (this.openedAt > 0 && Date.now() - this.openedAt >= (backoff.resetAfter ?? 5000)) {
      this.attempt = 0
      this.afterRefresh = false
    }
    this.openedAt = 0
    const failure = new ChanxClientError('FST_CHANX_CLIENT_DISCONNECTED', `The connection closed (${code}) before the reply came`)
    this.rejectPending(failure)
    if (this.state === 'closed' || this.state === 'idle') return
    const refusal = this.refusal
    if (refusal !== null) this.emit('refused', refusal)
    const info: CloseInfo = {
      code,
      reason,
      refusal: refusal as RefusalInfo | null,
      attempt: this.attempt,
      wasOpen: this.wasOpen,
      afterRefresh: this.afterRefresh,
      canRefresh: this.options.getToken !== undefined
    }
    const decision = this.options.policy === undefined ? defaultPolicy(info, backoff) : this.options.policy(info)
    if (decision.action === 'stop') {
      this.stop(code, reason, refusal ?? new ChanxRefusal(0, '', reason, code), false)
      return
    }
    this.state = 'connecting'
    let delay = decision.action === 'refresh' ? 0 : decision.delay
    // At most `maxPerMinute` handshakes in any minute, whatever the policy said.
    const dials = this.dials
    const now = Date.now()
    while (dials.length > 0 && dials[0]! <= now - 60000) dials.shift()
    if (dials.length >= (backoff.maxPerMinute ?? 12)) delay = Math.max(delay, dials[0]! + 60000 - now)
    this.afterRefresh = decision.action === 'refresh'
    this.emit('reconnecting', { attempt: ++this.attempt, delay, code, reason })
    this.timer = setTimeout(() => { if (this.state === 'connecting') this.dial(code === 4401 ? 'expired' : 'connect') }, delay)
  }

  private stop (code: number, reason: string, error: Error, dropQueue: boolean): void {
    const wasStopped = this.state === 'closed'
    this.state = 'closed'
    this.ws = null
    this.clearTimers()
    this.rejectPending(error)
    const waiters = this.waiters.splice(0)
    for (const waiter of waiters) waiter.reject(error)
    if (dropQueue) this.queue.length = 0
    if (!wasStopped) this.emit('closed', { code, reason, queued: this.queue.length })
  }

  private rejectPending (error: Error): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer)
      pending.reject(error)
    }
    this.pending.clear()
  }

  private clearTimers (): void {
    clearTimeout(this.timer)
    clearTimeout(this.refreshTimer)
    clearTimeout(this.pongTimer)
    clearInterval(this.pingTimer)
    this.pongTimer = this.pingTimer = undefined
  }
}

/** A JWT's claims, read without verifying: only to know when to refresh; `{}` when unreadable. */
function claimsOf (token: string | null | undefined): Json {
  try {
    const claims: unknown = JSON.parse(atob(token!.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/')))
    return isObject(claims) ? claims : {}
  } catch {
    return {}
  }
}
