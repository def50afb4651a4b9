/**
 * The message router (DESIGN "Messages after the handshake"): after the handshake, every frame of a socket
 * is parsed safely, routed by its action to one TypeBox schema and one handler, and answered in Chanx's
 * error shapes when it cannot be. Schemas are compiled once, when the route is declared; per frame the
 * work is one parse, one `Map` lookup and one compiled check, and errors are built only when a check fails.
 *
 * Frames of one connection are handled in arrival order: a frame waits in the connection's queue while
 * an earlier frame's handler is still pending (`concurrency` lets more than one run).
 */
import type { FastifyRequest, RouteOptions, RouteShorthandOptions } from 'fastify'
import type { WebsocketHandler } from '@fastify/websocket'
import { KindGuard, type Static, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { ValueErrorType } from '@sinclair/typebox/errors'
import { WebSocket } from 'ws'
import type { SocketMember } from '../channels/server-api'
import { InvalidOptionError } from '../core/errors'
import { TokenBucket } from '../connection/limits'
import { DEFAULT_MAX_DEPTH, INVALID, safeParse } from './safe-json'
import type { ChanxObject, ChanxUser, GroupContext } from '../handshake/route-types'

// ---------------------------------------------------------------------------------------------------------
// Public types

/** TypeBox schemas of message payloads, keyed by action. */
export type MessageSchemas = Readonly<Record<string, TSchema>>

/** A message on the wire: the action under `Key` (default `action`) and its payload. */
export type ChanxMessage<Action extends string = string, Payload = unknown, Key extends string = 'action'> =
  { [K in Key]: Action } & { payload: Payload }

/** The messages `Schemas` describe, as a union keyed by action; any message when none are declared. */
export type MessageOf<Schemas, Key extends string = 'action'> = [keyof Schemas] extends [never]
  ? ChanxMessage<string, unknown, Key>
  : { [A in keyof Schemas & string]: ChanxMessage<A, Schemas[A] extends TSchema ? Static<Schemas[A]> : unknown, Key> }[keyof Schemas & string]

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
   */
  broadcast (message: object, options?: BroadcastTarget): Promise<void>
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

type Awaitable<T> = T | Promise<T>

/** Handles one action; a returned value other than `undefined` is sent to the client. */
export type MessageHandler<Message, Context, Outgoing> =
  (message: Message, ctx: Context) => Awaitable<Outgoing | undefined | void>

/** Method syntax keeps these parameters bivariant, so a route's precisely typed handlers fit. */
interface LooseHandlers {
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
  /** Runs once the authentication message is sent, before any frame is dispatched. */
  onAuthenticated?: LooseHandlers['authenticated']
  /** Runs once when the socket closes, with its close code. */
  onClose?: LooseHandlers['closed']
  /** Payload schemas of channel events this route handles, keyed by event name (`app.chanx.sendEvent`). */
  events?: MessageSchemas
  /** One handler per declared event; it runs inside each member connection. A returned value is sent. */
  eventHandlers?: { readonly [name: string]: LooseHandlers['event'] }
}

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

type ObjectLoaderFor<Url extends string> = (request: FastifyRequest<{ Params: RouteParams<Url> }>) => unknown

type OwnKeys = keyof ChanxMessageRouteOptions | 'objectLoader' | 'websocket' | 'url' | 'method' | 'handler' | 'wsHandler' | 'groups'

/** A socket route as `defineSocketRoute` reads it; every type below is inferred from the literal. */
export interface SocketRouteDefinition<
  Url extends string,
  Messages extends MessageSchemas,
  Outgoing extends MessageSchemas,
  Loader extends ObjectLoaderFor<Url> | undefined,
  Key extends string,
  Events extends MessageSchemas = Record<never, TSchema>
> extends Omit<RouteShorthandOptions, OwnKeys> {
  url: Url
  objectLoader?: Loader
  messages: Messages
  handlers: {
    [Action in keyof Messages & string]: MessageHandler<
      ChanxMessage<Action, Static<Messages[Action]>, Key>,
      SocketContext<ChanxUser, LoadedObject<Loader>, RouteParams<Url>, MessageOf<Outgoing, Key>>,
      MessageOf<Outgoing, Key>
    >
  }
  outgoing?: Outgoing
  actionKey?: Key
  validateOutgoing?: boolean
  sendCompletion?: boolean
  concurrency?: number
  maxPayload?: number
  maxDepth?: number
  acceptBinary?: boolean
  onAuthenticated?: (ctx: SocketContext<ChanxUser, LoadedObject<Loader>, RouteParams<Url>, MessageOf<Outgoing, Key>>) => Awaitable<void>
  onClose?: (ctx: SocketContext<ChanxUser, LoadedObject<Loader>, RouteParams<Url>, MessageOf<Outgoing, Key>>, code: number) => Awaitable<void>
  groups?: (ctx: GroupContext<ChanxUser, LoadedObject<Loader>, RouteParams<Url>>) => readonly string[] | Promise<readonly string[]>
  /** Channel events this route handles: payload schemas keyed by event name. */
  events?: Events
  /** One handler per declared event, with the payload typed by its schema; a returned message is sent. */
  eventHandlers?: {
    [Event in keyof Events & string]: (
      payload: Static<Events[Event]>,
      ctx: SocketContext<ChanxUser, LoadedObject<Loader>, RouteParams<Url>, MessageOf<Outgoing, Key>>
    ) => Awaitable<MessageOf<Outgoing, Key> | undefined | void>
  }
}

/** What `defineSocketRoute` returns: options for `app.route`. */
export type SocketRouteOptions = Omit<RouteOptions, 'handler' | 'websocket'> & { websocket: true, handler: WebsocketHandler }

/** The route's WebSocket handler: the router, attached when the socket opened, does the work. */
function chanxSocketHandler (): void {}

/**
 * Declares a typed socket route for `app.route(...)`: messages are typed from their TypeBox schemas, `ctx.obj`
 * from `objectLoader`'s return type, `ctx.params` from the URL and `ctx.user` from `ChanxTypes`.
 *
 *     app.route(defineSocketRoute({
 *       url: '/ws/rooms/:roomId',
 *       messages: { chat: Type.Object({ text: Type.String() }) },
 *       handlers: { chat: (message, ctx) => ({ action: 'chat', payload: { text: message.payload.text } }) }
 *     }))
 */
export function defineSocketRoute<
  const Url extends string,
  Messages extends MessageSchemas,
  Loader extends ObjectLoaderFor<Url> | undefined,
  Outgoing extends MessageSchemas = Record<never, TSchema>,
  const Key extends string = 'action',
  Events extends MessageSchemas = Record<never, TSchema>
> (definition: SocketRouteDefinition<Url, Messages, Outgoing, Loader, Key, Events>): SocketRouteOptions {
  if (definition === null || typeof definition !== 'object') throw new InvalidOptionError('defineSocketRoute needs an options object')
  return { ...definition, method: 'GET', websocket: true, handler: chanxSocketHandler } as unknown as SocketRouteOptions
}

// ---------------------------------------------------------------------------------------------------------
// Wire messages

/** Frames are capped at 64 KiB unless configured (OWASP), per route and in ws itself. */
export const DEFAULT_MAX_PAYLOAD = 64 * 1024
/** A schema failure answers at most this many errors: a hostile frame must not buy a huge reply. */
const MAX_ERRORS = 20
/** Longest action quoted back in an error. */
const MAX_TAG_LENGTH = 100

export const DETAIL_INVALID_JSON = 'Invalid JSON'
export const DETAIL_BINARY = 'Binary frames are not accepted'
export const DETAIL_HANDLER_FAILED = 'Failed to process message'
export const DETAIL_RATE_LIMITED = 'Rate limit exceeded'

export interface RateLimit {
  /** Sustained frames per second. */
  messagesPerSecond: number
  /** Frames a socket may send at once above the rate; also how many dropped frames in a row close it (1008). */
  burst: number
}

/** Each `ValueErrorType`'s name in the error list: pydantic's where one matches, so Chanx clients read them. */
const ERROR_TYPES: string[] = []
for (const [name, value] of Object.entries(ValueErrorType)) {
  if (typeof value === 'number') ERROR_TYPES[value] = name.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase()
}
Object.assign(ERROR_TYPES, {
  [ValueErrorType.ObjectRequiredProperty]: 'missing',
  [ValueErrorType.ObjectAdditionalProperties]: 'extra_forbidden',
  [ValueErrorType.Object]: 'model_type',
  [ValueErrorType.String]: 'string_type',
  [ValueErrorType.StringMinLength]: 'string_too_short',
  [ValueErrorType.StringMaxLength]: 'string_too_long',
  [ValueErrorType.StringPattern]: 'string_pattern_mismatch',
  [ValueErrorType.Number]: 'float_type',
  [ValueErrorType.Integer]: 'int_type',
  [ValueErrorType.Boolean]: 'bool_type',
  [ValueErrorType.Null]: 'none_required',
  [ValueErrorType.Array]: 'list_type',
  [ValueErrorType.ArrayMinItems]: 'too_short',
  [ValueErrorType.ArrayMaxItems]: 'too_long',
  [ValueErrorType.Literal]: 'literal_error',
  [ValueErrorType.NumberMinimum]: 'greater_than_equal',
  [ValueErrorType.IntegerMinimum]: 'greater_than_equal',
  [ValueErrorType.NumberMaximum]: 'less_than_equal',
  [ValueErrorType.IntegerMaximum]: 'less_than_equal',
  [ValueErrorType.NumberExclusiveMinimum]: 'greater_than',
  [ValueErrorType.IntegerExclusiveMinimum]: 'greater_than',
  [ValueErrorType.NumberExclusiveMaximum]: 'less_than',
  [ValueErrorType.IntegerExclusiveMaximum]: 'less_than',
  [ValueErrorType.NumberMultipleOf]: 'multiple_of',
  [ValueErrorType.IntegerMultipleOf]: 'multiple_of'
})

/** One entry of a validation error list, as pydantic reports it. */
export interface MessageError {
  type: string
  loc: (string | number)[]
  msg: string
}

function locOf (action: string, path: string): (string | number)[] {
  const loc: (string | number)[] = [action, 'payload']
  if (path === '') return loc
  for (const raw of path.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    loc.push(/^(0|[1-9]\d{0,8})$/.test(segment) ? Number(segment) : segment)
  }
  return loc
}

/** Maps a failed check's errors, lazily and at most `MAX_ERRORS` of them, one per path. */
function schemaErrors (check: TypeCheck<TSchema>, action: string, payload: unknown): MessageError[] {
  const errors: MessageError[] = []
  let lastPath: string | undefined
  for (const error of check.Errors(payload)) {
    if (error.path === lastPath) continue
    lastPath = error.path
    errors.push({ type: ERROR_TYPES[error.type] ?? 'value_error', loc: locOf(action, error.path), msg: error.message })
    if (errors.length === MAX_ERRORS) break
  }
  return errors
}

function quoteTag (tag: unknown): string {
  // Never String(tag): a parsed object such as {"toString":1} makes it throw, inside a 'message' listener.
  const text = typeof tag === 'string' ? tag : (JSON.stringify(tag) ?? 'null')
  return text.length > MAX_TAG_LENGTH ? text.slice(0, MAX_TAG_LENGTH) + '…' : text
}

// ---------------------------------------------------------------------------------------------------------
// Compiling a route

interface CompiledAction {
  readonly name: string
  /** The payload schema as declared (read by the AsyncAPI document). */
  readonly schema: TSchema
  readonly check: TypeCheck<TSchema>
  readonly handler: (message: unknown, ctx: SocketContext) => unknown
}

type LooseContext = SocketContext<unknown, unknown, unknown, unknown>

/** One route's router, made once at registration; `attach` is called for every accepted socket. */
export class MessageRouter {
  readonly actions: ReadonlyMap<string, CompiledAction>
  readonly outgoing: ReadonlyMap<string, TypeCheck<TSchema>> | null
  /** The `outgoing` payload schemas as declared (read by the AsyncAPI document). */
  readonly outgoingSchemas: ReadonlyMap<string, TSchema> | null
  readonly validateOutgoing: boolean
  readonly sendCompletion: boolean
  readonly concurrency: number
  /** Frames per second a socket may send (a token bucket), or null for no limit; set from the plugin's default. */
  rateLimit: RateLimit | null = null
  /** The built-in `authenticate` action (in-band token refresh), when the route's authentication supports it. */
  refreshCredentials: ((request: FastifyRequest, socket: WebSocket, payload: unknown) => Promise<void>) | null = null
  readonly maxPayload: number
  readonly maxDepth: number
  readonly acceptBinary: boolean
  readonly actionKey: string
  readonly onAuthenticated: ((ctx: LooseContext) => unknown) | undefined
  readonly onClose: ((ctx: LooseContext, code: number) => unknown) | undefined
  readonly events: ReadonlyMap<string, CompiledEvent> | null
  /** Built once: the constant replies of this route, in its action key. */
  readonly replies: {
    readonly pong: string
    readonly complete: string
    readonly invalidJson: string
    readonly binary: string
    readonly handlerFailed: string
    readonly rateLimited: string
    readonly tagNotFound: string
    readonly errorPrefix: string
    readonly tagInvalidPrefix: string
    readonly tagInvalidSuffix: string
  }

  constructor (init: Omit<MessageRouter, 'replies' | 'attach' | 'rateLimit' | 'refreshCredentials'>) {
    this.actions = init.actions
    this.outgoing = init.outgoing
    this.outgoingSchemas = init.outgoingSchemas
    this.validateOutgoing = init.validateOutgoing
    this.sendCompletion = init.sendCompletion
    this.concurrency = init.concurrency
    this.maxPayload = init.maxPayload
    this.maxDepth = init.maxDepth
    this.acceptBinary = init.acceptBinary
    this.actionKey = init.actionKey
    this.onAuthenticated = init.onAuthenticated
    this.onClose = init.onClose
    this.events = init.events
    const key = JSON.stringify(init.actionKey)
    const tags = ['ping', ...[...init.actions.keys()].filter((name) => name !== 'ping')]
    const errorPrefix = '{' + key + ':"error","payload":'
    this.replies = {
      pong: '{' + key + ':"pong","payload":null}',
      complete: '{' + key + ':"complete","payload":null}',
      invalidJson: errorPrefix + JSON.stringify({ detail: DETAIL_INVALID_JSON }) + '}',
      binary: errorPrefix + JSON.stringify({ detail: DETAIL_BINARY }) + '}',
      handlerFailed: errorPrefix + JSON.stringify({ detail: DETAIL_HANDLER_FAILED }) + '}',
      rateLimited: errorPrefix + JSON.stringify({ detail: DETAIL_RATE_LIMITED }) + '}',
      tagNotFound: errorPrefix + JSON.stringify([{
        type: 'union_tag_not_found', loc: [], msg: `Unable to extract tag using discriminator '${init.actionKey}'`
      }]) + '}',
      errorPrefix,
      tagInvalidPrefix: 'Input tag \'',
      tagInvalidSuffix: `' found using '${init.actionKey}' does not match any of the expected tags: ` +
        tags.map((tag) => `'${tag}'`).join(', ')
    }
  }

  /** Called synchronously when the socket opens (after the authentication message): no frame is missed. */
  attach (socket: WebSocket, request: FastifyRequest, member: SocketMember): void {
    const connection = new Connection(this, socket, request, member)
    if (this.events !== null) member.eventListener = (name, payload) => connection.onEvent(name, payload)
    ;(socket as SocketWithConnection)[kConnection] = connection
    socket.on('message', onFrame)
    socket.on('close', onSocketClose)
    if (this.onAuthenticated === undefined) {
      connection.ready = true
      return
    }
    connection.runOnAuthenticated()
  }
}

const ROUTER_KEYS = [
  'messages', 'handlers', 'outgoing', 'validateOutgoing', 'sendCompletion', 'concurrency', 'maxPayload', 'maxDepth',
  'acceptBinary', 'actionKey', 'onAuthenticated', 'onClose', 'eventHandlers'
] as const

interface CompiledEvent {
  schema: TSchema
  check: TypeCheck<TSchema>
  handler: LooseHandlers['event']
}

function compileEvents (route: ChanxMessageRouteOptions, where: string): Map<string, CompiledEvent> | null {
  if (route.events === undefined) {
    if (route.eventHandlers !== undefined) throw new InvalidOptionError(`${where} eventHandlers needs events (TypeBox schemas keyed by event name)`)
    return null
  }
  if (!isRecord(route.events)) throw new InvalidOptionError(`${where} events must be an object of TypeBox schemas keyed by event name`)
  const handlers: unknown = route.eventHandlers ?? {}
  if (!isRecord(handlers)) throw new InvalidOptionError(`${where} eventHandlers must be an object of functions keyed by event name`)
  const events = new Map<string, CompiledEvent>()
  for (const [name, schema] of Object.entries(route.events)) {
    const handler = Object.prototype.hasOwnProperty.call(handlers, name) ? handlers[name] : undefined
    if (typeof handler !== 'function') throw new InvalidOptionError(`${where} event "${name}" has a schema but no handler (eventHandlers.${name})`)
    events.set(name, { schema, check: compileSchema(schema, `${where} events.${name}`), handler: handler as LooseHandlers['event'] })
  }
  for (const name of Object.keys(handlers)) {
    if (!events.has(name)) throw new InvalidOptionError(`${where} event handler "${name}" has no schema (events.${name})`)
  }
  return events
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function compileSchema (schema: unknown, where: string): TypeCheck<TSchema> {
  if (!KindGuard.IsSchema(schema)) throw new InvalidOptionError(`${where} must be a TypeBox schema`)
  try {
    return TypeCompiler.Compile(schema)
  } catch (err) {
    throw new InvalidOptionError(`${where} could not be compiled: ${(err as Error).message}`)
  }
}

function positiveInteger (value: unknown, where: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new InvalidOptionError(`${where} must be a positive integer`)
  return value
}

function optionalBoolean (value: unknown, where: string): boolean {
  if (value === undefined) return false
  if (typeof value !== 'boolean') throw new InvalidOptionError(`${where} must be a boolean`)
  return value
}

function optionalFunction<F> (value: unknown, where: string): F | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw new InvalidOptionError(`${where} must be a function`)
  return value as F
}

/**
 * Validates a route's message options and compiles its schemas; `null` when the route declares no
 * messages. `where` names the route in errors (`route GET /ws:`).
 */
export function compileRouter (route: ChanxMessageRouteOptions, where: string, websocket: boolean): MessageRouter | null {
  const events = compileEvents(route, where)
  if (events !== null && !websocket) throw new InvalidOptionError(`${where} events are only for WebSocket routes (websocket: true)`)
  if (route.messages === undefined && events === null) {
    const stray = ROUTER_KEYS.find((key) => route[key] !== undefined)
    if (stray !== undefined) throw new InvalidOptionError(`${where} ${stray} needs messages (an object of TypeBox schemas keyed by action)`)
    return null
  }
  route = route.messages === undefined ? { ...route, messages: {} } : route
  if (!websocket) throw new InvalidOptionError(`${where} messages are only for WebSocket routes (websocket: true)`)
  if (!isRecord(route.messages)) throw new InvalidOptionError(`${where} messages must be an object of TypeBox schemas keyed by action`)
  const handlers: unknown = route.handlers ?? {}
  if (!isRecord(handlers)) throw new InvalidOptionError(`${where} handlers must be an object of functions keyed by action`)

  const actions = new Map<string, CompiledAction>()
  for (const [name, schema] of Object.entries(route.messages)) {
    const handler = handlers[name]
    if (!Object.prototype.hasOwnProperty.call(handlers, name) || handler === undefined) {
      throw new InvalidOptionError(`${where} message "${name}" has a schema but no handler (handlers.${name})`)
    }
    if (typeof handler !== 'function') throw new InvalidOptionError(`${where} handlers.${name} must be a function (message, ctx)`)
    actions.set(name, { name, schema, check: compileSchema(schema, `${where} messages.${name}`), handler: handler as CompiledAction['handler'] })
  }
  for (const name of Object.keys(handlers)) {
    if (!actions.has(name)) throw new InvalidOptionError(`${where} handler "${name}" has no schema (messages.${name})`)
  }

  let outgoing: Map<string, TypeCheck<TSchema>> | null = null
  let outgoingSchemas: Map<string, TSchema> | null = null
  if (route.outgoing !== undefined) {
    if (!isRecord(route.outgoing)) throw new InvalidOptionError(`${where} outgoing must be an object of TypeBox schemas keyed by action`)
    outgoing = new Map()
    outgoingSchemas = new Map()
    for (const [name, schema] of Object.entries(route.outgoing)) {
      outgoing.set(name, compileSchema(schema, `${where} outgoing.${name}`))
      outgoingSchemas.set(name, schema)
    }
  }
  const validateOutgoing = optionalBoolean(route.validateOutgoing, `${where} validateOutgoing`)
  if (validateOutgoing && outgoing === null) throw new InvalidOptionError(`${where} validateOutgoing needs outgoing schemas`)

  const actionKey = route.actionKey ?? 'action'
  if (typeof actionKey !== 'string' || actionKey === '' || actionKey === 'payload') {
    throw new InvalidOptionError(`${where} actionKey must be a non-empty string other than "payload"`)
  }

  return new MessageRouter({
    actions,
    outgoing,
    outgoingSchemas,
    validateOutgoing,
    sendCompletion: optionalBoolean(route.sendCompletion, `${where} sendCompletion`),
    concurrency: positiveInteger(route.concurrency, `${where} concurrency`, 1),
    maxPayload: positiveInteger(route.maxPayload, `${where} maxPayload`, DEFAULT_MAX_PAYLOAD),
    maxDepth: positiveInteger(route.maxDepth, `${where} maxDepth`, DEFAULT_MAX_DEPTH),
    acceptBinary: optionalBoolean(route.acceptBinary, `${where} acceptBinary`),
    actionKey,
    onAuthenticated: optionalFunction(route.onAuthenticated, `${where} onAuthenticated`),
    onClose: optionalFunction(route.onClose, `${where} onClose`),
    events
  })
}

// ---------------------------------------------------------------------------------------------------------
// Per connection

const kConnection = Symbol('fastify-chanx.connection')
type SocketWithConnection = WebSocket & { [kConnection]?: Connection }
type RawFrame = Buffer | ArrayBuffer | Buffer[]

/** Marks a handler that threw synchronously. */
const THREW: unique symbol = Symbol('fastify-chanx.threw')

/** The context handed to handlers and hooks; one per connection. */
class Context implements LooseContext {
  readonly params: unknown
  readonly send: (message: unknown) => void
  readonly close: (code?: number, reason?: string) => void

  constructor (
    readonly request: FastifyRequest<{ Params: unknown }>,
    readonly socket: WebSocket,
    connection: Connection,
    private readonly member: SocketMember
  ) {
    this.params = request.params
    // Bound once per connection, so `const { send } = ctx` works too.
    this.send = (message) => connection.sendMessage(message)
    this.close = (code, reason) => connection.close(code, reason)
  }

  broadcast (message: object, options?: BroadcastTarget): Promise<void> {
    return this.member.broadcast(message, options?.groups, options?.excludeSelf)
  }

  sendEvent (name: string, payload?: unknown, options?: { groups?: string | readonly string[] }): Promise<void> {
    return this.member.sendEvent(name, payload, options?.groups)
  }

  join (group: string): Promise<void> {
    return this.member.join(group)
  }

  leave (group: string): Promise<void> {
    return this.member.leave(group)
  }

  get groups (): readonly string[] {
    return this.member.groups
  }

  /** Read from the request, so a re-authentication that replaces the user is seen. */
  get user (): unknown {
    return this.request.user
  }

  get obj (): unknown {
    return this.request.obj
  }
}

class Connection {
  ready = false
  closed = false
  inFlight = 0
  /** Frames waiting for an earlier handler (or onAuthenticated); `head` is the next to dispatch. */
  frames: (RawFrame | undefined)[] = []
  binary: boolean[] = []
  head = 0
  readonly ctx: Context
  /** The message-rate limiter, when the route has one. */
  readonly bucket: TokenBucket | null
  /** Frames dropped by the limiter since the last accepted one. */
  dropped = 0
  readonly onSettled: (value: unknown) => void
  readonly onFailed: (error: unknown) => void

  constructor (readonly router: MessageRouter, readonly socket: WebSocket, readonly request: FastifyRequest, member: SocketMember) {
    this.ctx = new Context(request as FastifyRequest<{ Params: unknown }>, socket, this, member)
    const limit = router.rateLimit
    this.bucket = limit === null ? null : new TokenBucket(limit.messagesPerSecond, limit.burst)
    // One pair per connection, not per frame.
    // They run as promise reactions: anything they threw would be an unhandled rejection, which ends Node.
    this.onSettled = (value) => {
      try { this.inFlight--; this.reply(value); this.complete(); this.pump() } catch (err) { this.broken(err) }
    }
    this.onFailed = (error) => {
      try { this.inFlight--; this.fail(error); this.complete(); this.pump() } catch (err) { this.broken(err) }
    }
  }

  get open (): boolean {
    return !this.closed && this.socket.readyState === WebSocket.OPEN
  }

  runOnAuthenticated (): void {
    let result: unknown
    try {
      result = this.router.onAuthenticated!(this.ctx)
    } catch (err) {
      this.hookFailed(err)
      return
    }
    if (isThenable(result)) {
      Promise.resolve(result).then(() => { this.ready = true; this.pump() }, (err: unknown) => this.hookFailed(err))
    } else {
      this.ready = true
      this.pump()
    }
  }

  /** A fault of the router itself while finishing a frame: log it and end this connection, not the process. */
  broken (err: unknown): void {
    this.request.log.error({ err }, 'fastify-chanx: the router failed while finishing a frame; closing the socket')
    this.close(1011, 'Internal error')
  }

  /**
   * A frame over the rate: answered with an error and dropped. A client that goes on sending while limited
   * (as many dropped frames in a row as the burst allows) is closed with 1008.
   */
  rateLimited (): void {
    const limit = this.router.rateLimit!
    if (++this.dropped > limit.burst) {
      this.request.log.warn('fastify-chanx: message rate limit exceeded repeatedly; closing the socket')
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
      return
    }
    let result: unknown
    try {
      result = event.handler(payload, this.ctx as unknown as SocketContext)
    } catch (err) {
      this.request.log.error({ err, event: name }, 'fastify-chanx: a channel event handler failed')
      return
    }
    if (isThenable(result)) {
      Promise.resolve(result).then(
        (value) => { if (value !== undefined) this.sendMessage(value) },
        (err: unknown) => this.request.log.error({ err, event: name }, 'fastify-chanx: a channel event handler failed')
      )
    } else if (result !== undefined) {
      this.sendMessage(result)
    }
  }

  hookFailed (err: unknown): void {
    this.request.log.error({ err }, 'fastify-chanx: onAuthenticated failed; closing the socket')
    this.close(1011, 'Internal error')
  }

  receive (data: RawFrame, isBinary: boolean): void {
    if (!this.open) return
    if (byteLength(data) > this.router.maxPayload) {
      this.close(1009, 'Message too big')
      return
    }
    if (this.bucket !== null && !this.bucket.take()) {
      this.rateLimited()
      return
    }
    this.dropped = 0
    if (this.ready && this.inFlight < this.router.concurrency && this.head === this.frames.length) {
      dispatch(this, data, isBinary)
      return
    }
    this.frames.push(data)
    this.binary.push(isBinary)
  }

  /** Dispatches queued frames while the route's concurrency allows. */
  pump (): void {
    const frames = this.frames
    while (this.ready && this.inFlight < this.router.concurrency && this.head < frames.length) {
      if (!this.open) break
      const data = frames[this.head] as RawFrame
      const isBinary = this.binary[this.head] as boolean
      frames[this.head] = undefined
      this.head++
      dispatch(this, data, isBinary)
    }
    if (this.head === frames.length || !this.open) {
      frames.length = 0
      this.binary.length = 0
      this.head = 0
    }
  }

  reply (value: unknown): void {
    if (value !== undefined) this.sendMessage(value)
  }

  fail (err: unknown): void {
    this.request.log.error({ err }, 'fastify-chanx: a message handler failed')
    this.sendRaw(this.router.replies.handlerFailed)
  }

  complete (): void {
    if (this.router.sendCompletion) this.sendRaw(this.router.replies.complete)
  }

  sendRaw (text: string): void {
    if (this.open) this.socket.send(text)
  }

  /** Sends a handler's message: checked against `outgoing` when asked, serialized once. */
  sendMessage (message: unknown): void {
    if (!this.open) return
    const text = prepare(this.router, message)
    if (text === OUTGOING_INVALID) {
      this.request.log.error('fastify-chanx: an outgoing message does not match its outgoing schema; not sent')
    } else if (text === undefined) {
      this.request.log.error('fastify-chanx: an outgoing message could not be serialized to JSON; not sent')
    } else {
      this.socket.send(text)
    }
  }

  close (code?: number, reason?: string): void {
    this.closed = true
    this.frames.length = 0
    this.binary.length = 0
    this.head = 0
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) {
      try {
        this.socket.close(code, reason)
      } catch (err) {
        // An invalid code or reason from a handler: close cleanly instead.
        this.request.log.error({ err }, 'fastify-chanx: ctx.close was given an invalid code or reason')
        this.socket.close(1011)
      }
    }
  }

  closedWith (code: number): void {
    this.closed = true
    this.frames.length = 0
    this.binary.length = 0
    this.head = 0
    const onClose = this.router.onClose
    if (onClose === undefined) return
    let result: unknown
    try {
      result = onClose(this.ctx, code)
    } catch (err) {
      this.request.log.error({ err }, 'fastify-chanx: onClose failed')
      return
    }
    if (isThenable(result)) Promise.resolve(result).then(undefined, (err: unknown) => this.request.log.error({ err }, 'fastify-chanx: onClose failed'))
  }
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
}

function isRecordLike (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object'
}

function outgoingValid (router: MessageRouter, message: unknown): boolean {
  if (!isRecordLike(message)) return false
  const action = message[router.actionKey]
  const check = typeof action === 'string' ? router.outgoing!.get(action) : undefined
  return check !== undefined && check.Check(message.payload === undefined ? null : message.payload)
}

const OUTGOING_INVALID: unique symbol = Symbol('fastify-chanx.outgoing-invalid')

/** The JSON text of a handler's message; `undefined` when it cannot be serialized (a getter threw, a cycle). */
function prepare (router: MessageRouter, message: unknown): string | undefined | typeof OUTGOING_INVALID {
  try {
    if (router.validateOutgoing && !outgoingValid(router, message)) return OUTGOING_INVALID
    return JSON.stringify(message)
  } catch {
    return undefined
  }
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

/** Calls a handler; a synchronous throw becomes `THREW` so the caller needs no try/catch of its own. */
function invoke (connection: Connection, handler: CompiledAction['handler'], message: unknown): unknown {
  try {
    return handler(message, connection.ctx as SocketContext)
  } catch (err) {
    connection.fail(err)
    return THREW
  }
}

/** One frame: parse, look up, check, handle. Answers every failure and keeps the connection open. */
function dispatch (connection: Connection, data: RawFrame, isBinary: boolean): void {
  const router = connection.router
  const replies = router.replies
  if (isBinary && !router.acceptBinary) {
    connection.sendRaw(replies.binary)
    connection.complete()
    return
  }
  const value = safeParse(toText(data), router.maxDepth)
  if (value === INVALID || value === null || typeof value !== 'object' || Array.isArray(value)) {
    connection.sendRaw(replies.invalidJson)
    connection.complete()
    return
  }
  const message = value as Record<string, unknown>
  const tag = message[router.actionKey]
  const action = typeof tag === 'string' ? router.actions.get(tag) : undefined
  if (action === undefined) {
    if (tag === 'ping') connection.sendRaw(replies.pong)
    else if (tag === 'authenticate' && router.refreshCredentials !== null) {
      // In-band token refresh: handled in the frame queue, like a handler, so later frames wait for it.
      connection.inFlight++
      router.refreshCredentials(connection.request, connection.socket, message.payload).then(connection.onSettled, connection.onFailed)
      return
    } else if (tag === undefined) connection.sendRaw(replies.tagNotFound)
    else connection.sendRaw(tagInvalid(router, tag))
    connection.complete()
    return
  }
  if (message.payload === undefined) message.payload = null
  if (!action.check.Check(message.payload)) {
    connection.sendRaw(replies.errorPrefix + JSON.stringify(schemaErrors(action.check, action.name, message.payload)) + '}')
    connection.complete()
    return
  }
  const result = invoke(connection, action.handler, message)
  if (result === THREW) {
    connection.complete()
  } else if (isThenable(result)) {
    connection.inFlight++
    // A foreign thenable's `then` may throw: Promise.resolve turns that into a rejection.
    const promise = result instanceof Promise ? result : Promise.resolve(result)
    promise.then(connection.onSettled, connection.onFailed)
  } else {
    connection.reply(result)
    connection.complete()
  }
}

function tagInvalid (router: MessageRouter, tag: unknown): string {
  const replies = router.replies
  return replies.errorPrefix + JSON.stringify([{
    type: 'union_tag_invalid',
    loc: [],
    msg: replies.tagInvalidPrefix + quoteTag(tag) + replies.tagInvalidSuffix
  }]) + '}'
}

/** The socket's 'message' listener, shared by every connection (`this` is the socket). */
function onFrame (this: SocketWithConnection, data: RawFrame, isBinary: boolean): void {
  const connection = this[kConnection]
  if (connection !== undefined) connection.receive(data, isBinary)
}

function onSocketClose (this: SocketWithConnection, code: number): void {
  const connection = this[kConnection]
  if (connection !== undefined) connection.closedWith(code)
}
