import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions, RouteShorthandOptions } from 'fastify'
import type { WebsocketHandler } from '@fastify/websocket'
import type { Static as StaticV1, TSchema as TSchemaV1 } from 'typebox' with { 'resolution-mode': 'import' }
import type { WebSocket } from 'ws'
import type { AuthenticatedPermission, Permission } from '../auth/permissions'
import type { ChanxObject, ChanxUser, GroupContext } from '../core/user-types'

/** The public types of typed socket routes: messages, handlers, their context and `defineSocketRoute`'s input. */

/**
 * A `@sinclair/typebox` 0.34 schema, matched by its shape rather than by its `[Kind]` symbol: TypeBox ships
 * separate CommonJS and ESM declarations whose symbols differ, and an app's schemas must fit either way.
 */
export interface SinclairSchema {
  params: unknown[]
  static: unknown
}

/** A `typebox` 1.x schema (what @fastify/type-provider-typebox 6 uses): it carries its kind as `~kind`. */
export interface TypeBoxSchema {
  readonly '~kind': string
}

/** A payload schema from either TypeBox line. */
export type MessageSchema = SinclairSchema | TypeBoxSchema

/** The type a schema of either TypeBox line describes (`Static` of its own line). */
export type SchemaStatic<Schema> = Schema extends SinclairSchema
  ? (Schema & { params: [] })['static']
  : Schema extends TypeBoxSchema & TSchemaV1 ? StaticV1<Schema> : unknown

/** TypeBox schemas of message payloads, keyed by action. */
export type MessageSchemas = Readonly<Record<string, MessageSchema>>

/** No schemas: the default of `outgoing` and `events`. */
export type NoSchemas = Record<never, MessageSchema>

/** A message on the wire: the action under `Key` (default `action`) and its payload. */
export type ChanxMessage<Action extends string = string, Payload = unknown, Key extends string = 'action'> =
  { [K in Key]: Action } & { payload: Payload }

/** The messages `Schemas` describe, as a union keyed by action; any message when none are declared. */
export type MessageOf<Schemas, Key extends string = 'action'> = [keyof Schemas] extends [never]
  ? ChanxMessage<string, unknown, Key>
  : { [A in keyof Schemas & string]: ChanxMessage<A, SchemaStatic<Schemas[A]>, Key> }[keyof Schemas & string]

/** What a handler gets besides the message: who is connected, to what, and how to answer. */
export interface SocketContext<
  User = ChanxUser,
  Obj = ChanxObject,
  Params = unknown,
  Outgoing = ChanxMessage
> {
  /** The authenticated user (`request.user`). */
  readonly user: User
  /** The object the route's `objectLoader` loaded (`request.obj`). */
  readonly obj: Obj
  /** The upgrade request. */
  readonly request: FastifyRequest<{ Params: Params }>
  /** The route's URL parameters. */
  readonly params: Params
  /** The server side of the connection. */
  readonly socket: WebSocket
  /** Sends a message (JSON) to this connection; dropped once the socket is closing. */
  send (message: Outgoing): void
  /** Closes the connection; no further frame is dispatched. */
  close (code?: number, reason?: string): void
  /**
   * Sends `message` to every member of `groups` (default: the groups this socket is in), in every process;
   * each copy carries `is_mine` and `is_current`. `excludeSelf` (default true) skips this very socket.
   * Typed by the route's `outgoing` schemas, as `send` is; with `validateOutgoing: true`, a message that does
   * not match them rejects with FST_CHANX_OUTGOING_INVALID and reaches nobody.
   */
  broadcast (message: Outgoing, options?: BroadcastTarget): Promise<void>
  /** Runs the routes' event handler `name` inside every member of `groups` (default: this socket's groups). */
  sendEvent (name: string, payload?: unknown, options?: { groups?: string | readonly string[] }): Promise<void>
  /** Joins a group now; resolves once broadcasts to it reach this socket. */
  join (group: string): Promise<void>
  /** Leaves a group. */
  leave (group: string): Promise<void>
  /** The groups this socket is in. */
  readonly groups: readonly string[]
}

export interface BroadcastTarget {
  groups?: string | readonly string[]
  excludeSelf?: boolean
}

export type Awaitable<T> = T | Promise<T>

/** The context as the router sees it, whatever the route's types. */
export type LooseContext = SocketContext<unknown, unknown, unknown, unknown>

/** Handles one action; a returned value other than `undefined` is sent to the client. */
export type MessageHandler<Message, Context, Outgoing> =
  (message: Message, ctx: Context) => Awaitable<Outgoing | undefined | void>

/** Method syntax keeps these parameters bivariant, so a route's precisely typed handlers fit. */
export interface LooseHandlers {
  handle (message: ChanxMessage, ctx: SocketContext): unknown
  authenticated (ctx: SocketContext): unknown
  closed (ctx: SocketContext, code: number): unknown
  event (payload: unknown, ctx: SocketContext): unknown
  groups (ctx: GroupContext): readonly string[] | Promise<readonly string[]>
}

/**
 * Message options of a socket route. `defineSocketRoute` types them precisely; on a plain
 * `app.get(url, { websocket: true, messages, handlers }, handler)` route they are typed loosely.
 */
export interface ChanxMessageRouteOptions {
  /** Payload schemas keyed by action: declaring them turns the router on for the route. */
  messages?: MessageSchemas
  /** One handler per declared action. */
  handlers?: { readonly [action: string]: LooseHandlers['handle'] }
  /** Payload schemas of the messages handlers send, keyed by action. */
  outgoing?: MessageSchemas
  /** Check what handlers send against `outgoing`; an invalid message is logged and not sent (default false). */
  validateOutgoing?: boolean
  /** Send `{"action":"complete","payload":null}` after each frame is handled, errors included (default false). */
  sendCompletion?: boolean
  /** Frames of one connection handled at once (default 1: strictly in arrival order). */
  concurrency?: number
  /** Largest frame in bytes; a larger one closes the socket with 1009 (default 65536). */
  maxPayload?: number
  /** Deepest nesting of objects and arrays accepted in a frame (default 64). */
  maxDepth?: number
  /** Read binary frames as UTF-8 JSON like text frames (default false: they are answered with an error). */
  acceptBinary?: boolean
  /** The field that names a message's action, incoming and outgoing (default `'action'`). */
  actionKey?: string
  /** No lax conversions: `"5"` is not an integer (pydantic's strict mode; default: the plugin's `strict`, false). */
  strict?: boolean
  /** Runs once the authentication message is sent, before any frame is dispatched. */
  onAuthenticated?: LooseHandlers['authenticated']
  /** Runs once when the socket closes, with its close code. */
  onClose?: LooseHandlers['closed']
  /** Payload schemas of channel events this route handles, keyed by event name (`app.chanx.sendEvent`). */
  events?: MessageSchemas
  /** One handler per declared event; it runs inside each member connection. A returned value is sent. */
  eventHandlers?: { readonly [name: string]: LooseHandlers['event'] }
}

/** Every key of `ChanxMessageRouteOptions`, checked by the compiler against the interface (see HANDSHAKE_ROUTE_OPTIONS). */
export const MESSAGE_ROUTE_OPTIONS = Object.keys({
  messages: true,
  handlers: true,
  outgoing: true,
  validateOutgoing: true,
  sendCompletion: true,
  concurrency: true,
  maxPayload: true,
  maxDepth: true,
  acceptBinary: true,
  actionKey: true,
  strict: true,
  onAuthenticated: true,
  onClose: true,
  events: true,
  eventHandlers: true
} satisfies Record<keyof ChanxMessageRouteOptions, true>) as readonly (keyof ChanxMessageRouteOptions)[]

/** The params a Fastify URL declares: `'/rooms/:roomId'` gives `{ roomId: string }`. */
export type RouteParams<Url extends string> = string extends Url
  ? Record<string, string>
  : { [Name in ParamNames<Url>]: string }

type ParamName<Segment extends string> =
  Segment extends `${infer Name}(${string}` ? ParamName<Name>
    : Segment extends `${infer Name}-${infer Rest}` ? Name | ParamNames<Rest>
      : Segment extends `${infer Name}.${infer Rest}` ? Name | ParamNames<Rest>
        : Segment

type ParamNames<Url extends string> =
  Url extends `${string}:${infer Rest}`
    ? Rest extends `${infer Segment}/${infer Tail}` ? ParamName<Segment> | ParamNames<Tail> : ParamName<Rest>
    : Url extends `${string}*${string}` ? '*' : never

/** The object type a loader yields, once the handshake has turned `null` into a 404. */
export type LoadedObject<Loader> = Loader extends (...args: never[]) => infer Result
  ? unknown extends Result ? ChanxObject : NonNullable<Awaited<Result>>
  : ChanxObject

export type ObjectLoaderFor<Url extends string> = (request: FastifyRequest<{ Params: RouteParams<Url> }>) => unknown

/** Message options whose type does not depend on the route's schemas: `SocketRouteDefinition` takes them as declared. */
type PlainMessageOptions = 'validateOutgoing' | 'sendCompletion' | 'concurrency' | 'maxPayload' | 'maxDepth' | 'acceptBinary' | 'strict'

type OwnKeys = Exclude<keyof ChanxMessageRouteOptions, PlainMessageOptions> | 'objectLoader' | 'permissions' | 'websocket' | 'url' | 'method' | 'handler' | 'wsHandler' | 'groups'

/**
 * The user a route's handlers see: `NonNullable<ChanxUser>` when its `permissions` list `IsAuthenticated`
 * itself, which refuses every anonymous request; else `ChanxUser`.
 */
export type UserAfter<Permissions> = Permissions extends readonly unknown[]
  ? [Extract<Permissions[number], AuthenticatedPermission>] extends [never] ? ChanxUser : NonNullable<ChanxUser>
  : ChanxUser

/** The context of a typed socket route's handlers. */
type RouteContext<Url extends string, Loader, Permissions, Outgoing extends MessageSchemas, Key extends string> =
  SocketContext<UserAfter<Permissions>, LoadedObject<Loader>, RouteParams<Url>, MessageOf<Outgoing, Key>>

/** A socket route as `defineSocketRoute` reads it; every type below is inferred from the literal. */
export interface SocketRouteDefinition<
  Url extends string,
  Messages extends MessageSchemas,
  Outgoing extends MessageSchemas,
  Loader extends ObjectLoaderFor<Url> | undefined,
  Key extends string,
  Events extends MessageSchemas = NoSchemas,
  Permissions extends readonly Permission<never>[] = readonly Permission[]
> extends Omit<RouteShorthandOptions, OwnKeys> {
  url: Url
  objectLoader?: Loader
  /**
   * Every permission must allow; each object check gets the object `objectLoader` returns. (Inferred as
   * listed, then checked against the loaded object: a constraint naming `Loader` would fix it too early.)
   */
  permissions?: Permissions & readonly Permission<LoadedObject<Loader>>[]
  messages: Messages
  handlers: {
    [Action in keyof Messages & string]: MessageHandler<
      ChanxMessage<Action, SchemaStatic<Messages[Action]>, Key>,
      RouteContext<Url, Loader, Permissions, Outgoing, Key>,
      MessageOf<Outgoing, Key>
    >
  }
  outgoing?: Outgoing
  actionKey?: Key
  onAuthenticated?: (ctx: RouteContext<Url, Loader, Permissions, Outgoing, Key>) => Awaitable<void>
  onClose?: (ctx: RouteContext<Url, Loader, Permissions, Outgoing, Key>, code: number) => Awaitable<void>
  groups?: (ctx: GroupContext<UserAfter<Permissions>, LoadedObject<Loader>, RouteParams<Url>>) => readonly string[] | Promise<readonly string[]>
  /** Channel events this route handles: payload schemas keyed by event name. */
  events?: Events
  /** One handler per declared event, with the payload typed by its schema; a returned message is sent. */
  eventHandlers?: {
    [Event in keyof Events & string]: (
      payload: SchemaStatic<Events[Event]>,
      ctx: RouteContext<Url, Loader, Permissions, Outgoing, Key>
    ) => Awaitable<MessageOf<Outgoing, Key> | undefined | void>
  }
}

/** The object type of a `defineRoute` route: what its loader yields, or `ChanxObject` without a loader. */
export type RouteObject<Obj> = unknown extends Obj ? ChanxObject : Obj

/** The request an HTTP route's handler gets from `defineRoute`: its params, its loaded object, its user. */
export type RouteRequest<Url extends string, Obj, Permissions> =
  Omit<FastifyRequest<{ Params: RouteParams<Url> }>, 'obj' | 'user'> & {
    /** The object `objectLoader` loaded (never null: a null object already answered 404). */
    readonly obj: RouteObject<Obj>
    /** The user, non-null when `permissions` list `IsAuthenticated`. */
    readonly user: UserAfter<Permissions>
  }

/**
 * An HTTP route as `defineRoute` reads it: Fastify's route options, with the object inferred from what
 * `objectLoader` returns (`Obj`; `null`/`undefined` answer 404) and the user from `permissions`.
 */
export interface RouteDefinition<
  Url extends string,
  Obj,
  Permissions extends readonly Permission<never>[]
> extends Omit<RouteOptions, 'url' | 'handler' | 'objectLoader' | 'permissions' | 'websocket' | 'wsHandler'> {
  url: Url
  objectLoader?: (request: FastifyRequest<{ Params: RouteParams<Url> }>) => Obj | null | undefined | Promise<Obj | null | undefined>
  /** Every permission must allow; each object check gets the object `objectLoader` returns. */
  permissions?: Permissions & readonly Permission<NoInfer<Obj>>[]
  handler: (this: FastifyInstance, request: RouteRequest<Url, Obj, Permissions>, reply: FastifyReply) => unknown
}

/**
 * What `defineSocketRoute` returns: options for `app.route`, branded with the route's message types so that
 * `createClient<typeof route>` (fastify-chanx/client) types what the client sends and receives. `__chanx`
 * is a phantom: it never exists at run time.
 */
export type SocketRouteOptions<Incoming = unknown, Outgoing = unknown, Key extends string = string> =
  Omit<RouteOptions, 'handler' | 'websocket'> & {
    websocket: true
    handler: WebsocketHandler
    readonly __chanx?: { incoming: Incoming, outgoing: Outgoing, actionKey: Key }
  }

export interface RateLimit {
  /** Sustained frames per second. */
  messagesPerSecond: number
  /** Frames a socket may send at once above the rate; also how many dropped frames in a row close it (1008). */
  burst: number
}

/** One entry of a validation error list, as pydantic reports it. */
export interface MessageError {
  type: string
  loc: (string | number)[]
  msg: string
}
