/**
 * The client's types, read from a route's type alone: `defineSocketRoute` brands what it returns with its
 * messages (`__chanx`, a phantom property that never exists at run time), so `createClient<typeof route>`
 * needs only `import type` and no server code reaches a browser bundle.
 */

/** What a route declares, as `defineSocketRoute`'s brand carries it. */
export interface RouteMessageTypes {
  /** The messages the client may send: a union keyed by action. */
  incoming: unknown
  /** The messages handlers send back: a union keyed by action. */
  outgoing: unknown
  /** The field that names the action (default `'action'`). */
  actionKey: string
}

/** Anything typed like a `defineSocketRoute` result; `ClientRoute` itself types every message loosely. */
export interface ClientRoute {
  readonly __chanx?: RouteMessageTypes
}

type Loose = { incoming: { action: string, payload: unknown }, outgoing: { action: string, payload: unknown }, actionKey: 'action' }
type TypesOf<Route> = Route extends { readonly __chanx?: infer T }
  ? NonNullable<T> extends RouteMessageTypes ? unknown extends NonNullable<T>['incoming'] ? Loose : NonNullable<T> : Loose
  : Loose

export type KeyOf<Route> = TypesOf<Route>['actionKey']

/** The actions of a message union. */
export type ActionOf<Message, Key extends string> = Message extends { readonly [K in Key]: infer A } ? A & string : never

/** The member of a message union with that action. */
export type MessageWith<Message, Key extends string, Action> = Message extends { readonly [K in Key]: infer A }
  ? Action extends A ? Message : never
  : never

/** The messages the server itself sends after the handshake. */
export type ServerMessage<Key extends string> =
  | ({ [K in Key]: 'error' } & { payload: unknown })
  | ({ [K in Key]: 'complete' } & { payload: null })
  | ({ [K in Key]: 'pong' } & { payload: null })

/** What a client receives: the route's outgoing messages (broadcast copies carry `is_mine`/`is_current`, replies the frame's `id`). */
export type Received<Route> = (TypesOf<Route>['outgoing'] | ServerMessage<KeyOf<Route>>) & {
  readonly id?: string | number
  readonly is_mine?: boolean
  readonly is_current?: boolean
  /** On a route with history: the message's position in each target group (docs/recovery.md). */
  readonly chanx_pos?: Readonly<Record<string, readonly [number, string]>>
  /** On a route with history: a `sendToUser` message's position in the user's stream. */
  readonly chanx_upos?: readonly [number, string]
}

export type IncomingAction<Route> = ActionOf<TypesOf<Route>['incoming'], KeyOf<Route>>

/** The payload the route's schema expects for `Action`. */
export type PayloadOf<Route, Action> = MessageWith<TypesOf<Route>['incoming'], KeyOf<Route>, Action> extends { payload: infer P } ? P : never

/** What an authentication on a route with history says of the resume (docs/recovery.md). */
export interface RecoveryInfo {
  /** true: every missed message was replayed; false: some may be lost, refetch; null: nothing was resumed (first connection). */
  readonly recovered: boolean | null
  /** Why not: `window_exceeded`, `epoch_changed`, `not_allowed`, `invalid_token`, `unavailable`, or `too_many_groups` (the client's own: the group's position did not fit in the resume); null when recovered. */
  readonly reason: string | null
  /** The reason per group that was not recovered. */
  readonly failed: Readonly<Record<string, string>>
  /** The reason the user stream (sendToUser messages) was not recovered, or null. */
  readonly userFailed: string | null
}

/** A refused handshake (or a connection that ended before its authentication message). */
export interface RefusalInfo {
  /** The HTTP status of the authentication message; 0 when the connection ended before one came. */
  readonly status: number
  readonly statusText: string
  readonly detail: string
  readonly closeCode: number
}

/** A socket's close, as the reconnection policy sees it. */
export interface CloseInfo {
  readonly code: number
  readonly reason: string
  /** The refusal this socket got, if its authentication message said no. */
  readonly refusal: RefusalInfo | null
  /** Reconnections tried since the last healthy connection (one that stayed open `backoff.resetAfter` ms), or since `connect()`. */
  readonly attempt: number
  /** Whether this client has been authenticated before (false: it is still in `connect()`'s first handshake). */
  readonly wasOpen: boolean
  /** Whether a retry after a 4401 with a fresh token was made since the last healthy connection. */
  readonly afterRefresh: boolean
  /** Whether the client has a `getToken` to ask for a fresh token. */
  readonly canRefresh: boolean
}

/** What to do after a close: retry after `delay` ms, retry at once with a fresh token, or stop. */
export type Decision = { readonly action: 'reconnect', readonly delay: number } | { readonly action: 'refresh' } | { readonly action: 'stop' }

export interface BackoffOptions {
  /** First delay's upper bound in ms (default 500). */
  initialDelay?: number
  /** Largest delay's upper bound in ms (default 30000). */
  maxDelay?: number
  /** Growth per attempt (default 2). */
  factor?: number
  /** Reconnections tried before giving up (default Infinity). */
  maxAttempts?: number
  /** A connection open this many ms proved healthy: the next close starts the backoff over (default 5000). */
  resetAfter?: number
  /** Handshakes started in any 60 s, at most (default 12): the next waits, whatever the policy said. */
  maxPerMinute?: number
}

/** Why `getToken` is called: for a new socket, after a 4401, or for an in-band refresh before expiry. */
export type TokenReason = 'connect' | 'expired' | 'refresh'

/** A WebSocket constructor: the browser's, Node 22's, or `ws`'s. */
export interface WebSocketConstructor {
  new (url: string, protocols?: string | string[]): WebSocketLike
}

/** A handler property, compared bivariantly (as methods are): the browser's and `ws`'s richer event types fit. */
type Handler<Event> = { bivarianceHack (event: Event): void }['bivarianceHack'] | null

/** The part of the WHATWG WebSocket the client uses. */
export interface WebSocketLike {
  readonly readyState: number
  onopen: Handler<unknown>
  onmessage: Handler<{ data: unknown }>
  onclose: Handler<{ code: number, reason: string }>
  onerror: Handler<unknown>
  send (data: string): void
  close (code?: number, reason?: string): void
}

export interface ClientOptions {
  /** The WebSocket implementation (default: the global one, else `ws` on Node). */
  WebSocket?: WebSocketConstructor
  /** Subprotocols to offer. */
  protocols?: string | string[]
  /** Returns the JWT for the next socket or for an in-band refresh; `null`/`undefined`: connect without one. */
  getToken?: (reason: TokenReason) => string | null | undefined | Promise<string | null | undefined>
  /** How the token travels: `'query'` (default, `?token=`) or `'protocol'` (a `bearer.<jwt>` subprotocol, never logged). */
  tokenIn?: 'query' | 'protocol'
  /** The query parameter of the token (default `'token'`). */
  tokenParam?: string
  /** Refresh the token in-band this many ms before it expires, or at half its life if shorter, never within 1 s of the last (default 30000; 0: never). */
  refreshBeforeExpiry?: number
  /** Backoff of the default policy. */
  backoff?: BackoffOptions
  /** Replaces the reconnection policy; `defaultPolicy` is exported to fall back on. */
  policy?: (close: CloseInfo) => Decision
  /** Frames `send`/`request` may queue while disconnected (default 100); one more throws `FST_CHANX_CLIENT_QUEUE_FULL`. */
  maxQueued?: number
  /** How long `request` waits for its reply (default 10000 ms). */
  requestTimeout?: number
  /** Send `ping` after `interval` ms without a frame; no frame within `timeout` ms after it: the path is dead, reconnect. */
  ping?: { interval: number, timeout: number }
  /**
   * The longest `chanx_recover` query parameter a reconnection sends (characters, default 8192; servers refuse
   * headers over 16 KiB with 431). Group positions that do not fit are not sent, and the resume reports
   * them not recovered (`too_many_groups`), so the app refetches them. Halved after each 431.
   */
  maxResumeLength?: number
  /** The route sends no authentication message (`sendAuthenticationMessage: false`): the socket is ready when it opens. */
  noAuthenticationMessage?: boolean
}
