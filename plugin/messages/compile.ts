/**
 * Compiling a route's message options (DESIGN "Messages after the handshake"): validated and compiled once,
 * when the route is declared, into a `MessageRouter` that every accepted socket of the route shares.
 */
import type { FastifyRequest } from 'fastify'
import { KindGuard, type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { InvalidOptionError } from '../core/errors'
import { isRecord, optionalBoolean, optionalFunction, positiveInteger } from '../core/validate'
import { DETAIL_BINARY, DETAIL_HANDLER_FAILED, DETAIL_INVALID_JSON, DETAIL_RATE_LIMITED } from '../core/wire'
import type { CredentialHolder } from '../core/credentials'
import { DEFAULT_MAX_PAYLOAD } from '../core/limits'
import { compileCoercer, type Coercer } from './coerce'
import { DEFAULT_MAX_DEPTH } from './safe-json'
import { withSafeIntegers } from './safe-integers'
import { compileTypeBoxV1, isTypeBoxV1Schema, type SchemaCheck } from './typebox-v1'
import { MESSAGE_ROUTE_OPTIONS, type ChanxMessageRouteOptions, type LooseContext, type LooseHandlers, type MessageSchema, type RateLimit, type SocketContext } from './types'

export interface CompiledAction {
  readonly name: string
  /** The payload schema as declared (read by the AsyncAPI document). */
  readonly schema: MessageSchema
  readonly check: SchemaCheck
  readonly handler: (message: unknown, ctx: SocketContext) => unknown
  /** pydantic's lax conversions, tried only once `check` has failed; `null` on strict routes. */
  readonly coerce: Coercer | null
  readonly lax: boolean
}

/**
 * The in-band token refresh behind the built-in `authenticate` action (connection/credential-lifetime.ts):
 * `holder` is the socket's open connection, which keeps its expiry and sends through its output.
 */
export type RefreshCredentials = (request: FastifyRequest, payload: unknown, holder: CredentialHolder) => Promise<void>

/** What a route's router takes from the plugin and route options besides its message options. */
export interface RouterSettings {
  rateLimit: RateLimit | null
  refreshCredentials: RefreshCredentials | null
  /** The plugin's `strict` default (no lax conversions). */
  strict: boolean
}

/** One route's router, compiled once at registration and complete when built; it is attached to every accepted socket. */
export class MessageRouter {
  readonly actions: ReadonlyMap<string, CompiledAction>
  readonly outgoing: ReadonlyMap<string, SchemaCheck> | null
  /** The `outgoing` payload schemas as declared (read by the AsyncAPI document). */
  readonly outgoingSchemas: ReadonlyMap<string, MessageSchema> | null
  readonly validateOutgoing: boolean
  readonly sendCompletion: boolean
  readonly concurrency: number
  /** Frames per second a socket may send (a token bucket), or null for no limit. */
  readonly rateLimit: RateLimit | null
  /** The built-in `authenticate` action (in-band token refresh), when the route's authentication supports it. */
  readonly refreshCredentials: RefreshCredentials | null
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
    readonly groupComplete: string
    readonly invalidJson: string
    readonly binary: string
    readonly handlerFailed: string
    readonly rateLimited: string
    readonly invalidId: string
    readonly tagNotFound: string
    readonly errorPrefix: string
    readonly tagInvalidPrefix: string
    readonly tagInvalidSuffix: string
  }

  constructor (init: Omit<MessageRouter, 'replies'>) {
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
    this.rateLimit = init.rateLimit
    this.refreshCredentials = init.refreshCredentials
    const key = JSON.stringify(init.actionKey)
    const tags = ['ping', ...[...init.actions.keys()].filter((name) => name !== 'ping')]
    const errorPrefix = '{' + key + ':"error","payload":'
    this.replies = {
      pong: '{' + key + ':"pong","payload":null}',
      complete: '{' + key + ':"complete","payload":null}',
      groupComplete: '{' + key + ':"group_complete","payload":null}',
      invalidJson: errorPrefix + JSON.stringify({ detail: DETAIL_INVALID_JSON }) + '}',
      binary: errorPrefix + JSON.stringify({ detail: DETAIL_BINARY }) + '}',
      handlerFailed: errorPrefix + JSON.stringify({ detail: DETAIL_HANDLER_FAILED }) + '}',
      rateLimited: errorPrefix + JSON.stringify({ detail: DETAIL_RATE_LIMITED }) + '}',
      invalidId: errorPrefix + JSON.stringify({ detail: DETAIL_INVALID_ID }) + '}',
      tagNotFound: errorPrefix + JSON.stringify([{
        type: 'union_tag_not_found', loc: [], msg: `Unable to extract tag using discriminator '${init.actionKey}'`
      }]) + '}',
      errorPrefix,
      tagInvalidPrefix: 'Input tag \'',
      tagInvalidSuffix: `' found using '${init.actionKey}' does not match any of the expected tags: ` +
        tags.map((tag) => `'${tag}'`).join(', ')
    }
  }
}

/** Longest string `id` a frame may carry for request/reply correlation (docs/protocol.md). */
export const MAX_ID_LENGTH = 64

/** The error detail for a frame whose `id` is neither a short string nor a number. */
export const DETAIL_INVALID_ID = `Invalid id: a string of at most ${MAX_ID_LENGTH} characters or a finite number`

/**
 * The server's own messages: an action of that name would be indistinguishable from them on the wire (a
 * client could not tell a handler's `authentication` from the handshake's). `ping` may be replaced;
 * `authenticate` only where the route's authenticators do no in-band refresh.
 */
const SERVER_MESSAGES: ReadonlySet<string> = new Set(['authentication', 'error', 'complete', 'pong'])

function checkActionName (name: string, where: string, settings: RouterSettings): void {
  if (SERVER_MESSAGES.has(name)) {
    throw new InvalidOptionError(`${where} "${name}" is a message the server itself sends (authentication, error, complete, pong): name the action otherwise`)
  }
  if (name === 'authenticate' && settings.refreshCredentials !== null) {
    throw new InvalidOptionError(`${where} "authenticate" is the built-in in-band token refresh of this route's authenticators: name the action otherwise`)
  }
}

/** The message options that mean nothing without `messages` (or `events`). */
const ROUTER_KEYS = MESSAGE_ROUTE_OPTIONS.filter((key) => key !== 'messages' && key !== 'events')

export interface CompiledEvent {
  schema: MessageSchema
  check: SchemaCheck
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

/** Compiles a payload schema once, with the compiler of its own TypeBox line (`parsed`: a client's frame's). */
function compileSchema (schema: unknown, where: string, parsed = false): SchemaCheck {
  const v1 = isTypeBoxV1Schema(schema)
  if (!v1 && !KindGuard.IsSchema(schema)) {
    throw new InvalidOptionError(`${where} must be a TypeBox schema (from @sinclair/typebox 0.34 or typebox 1.x)`)
  }
  try {
    // A frame's payload comes from JSON.parse: it is checked on a copy whose integers are bounded to the
    // safe range (safe-integers.ts). Events and outgoing messages are values the app made, not parsed text.
    const checked = parsed ? withSafeIntegers(schema as object) : schema as object
    return v1 ? compileTypeBoxV1(checked, where) : TypeCompiler.Compile(checked as Parameters<typeof TypeCompiler.Compile>[0])
  } catch (err) {
    if (err instanceof InvalidOptionError) throw err
    throw new InvalidOptionError(`${where} could not be compiled: ${(err as Error).message}`)
  }
}

/**
 * Validates a route's message options and compiles its schemas; `null` when the route declares no
 * messages. `where` names the route in errors (`route GET /ws:`).
 */
export function compileRouter (route: ChanxMessageRouteOptions, where: string, websocket: boolean, settings: RouterSettings): MessageRouter | null {
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

  const lax = !(route.strict === undefined ? settings.strict : optionalBoolean(route.strict, `${where} strict`))
  const actions = new Map<string, CompiledAction>()
  for (const [name, schema] of Object.entries(route.messages)) {
    checkActionName(name, `${where} messages:`, settings)
    const handler = handlers[name]
    if (!Object.prototype.hasOwnProperty.call(handlers, name) || handler === undefined) {
      throw new InvalidOptionError(`${where} message "${name}" has a schema but no handler (handlers.${name})`)
    }
    if (typeof handler !== 'function') throw new InvalidOptionError(`${where} handlers.${name} must be a function (message, ctx)`)
    const check = compileSchema(schema, `${where} messages.${name}`, true)
    actions.set(name, { name, schema, check, handler: handler as CompiledAction['handler'], coerce: lax && !isTypeBoxV1Schema(schema) ? compileCoercer(schema as TSchema) : null, lax })
  }
  for (const name of Object.keys(handlers)) {
    if (!actions.has(name)) throw new InvalidOptionError(`${where} handler "${name}" has no schema (messages.${name})`)
  }

  let outgoing: Map<string, SchemaCheck> | null = null
  let outgoingSchemas: Map<string, MessageSchema> | null = null
  if (route.outgoing !== undefined) {
    if (!isRecord(route.outgoing)) throw new InvalidOptionError(`${where} outgoing must be an object of TypeBox schemas keyed by action`)
    outgoing = new Map()
    outgoingSchemas = new Map()
    for (const [name, schema] of Object.entries(route.outgoing)) {
      if (SERVER_MESSAGES.has(name)) checkActionName(name, `${where} outgoing:`, settings)
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
    events,
    rateLimit: settings.rateLimit,
    refreshCredentials: settings.refreshCredentials
  })
}
