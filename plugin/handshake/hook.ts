import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type {} from '@fastify/websocket'
import type { WebSocket, WebSocketServer } from 'ws'
import { AuthenticationResult } from '../auth/authenticator'
import { keyOfUser } from '../core/identity'
import { SocketConnection, type ConnectionScope, type ConnectionServices } from '../connection/connection'
import type { RouteHandshake } from './route-options'
import { DETAIL_ORIGIN_REFUSED } from './origin'
import {
  AUTHENTICATION_OK_MESSAGE,
  DETAIL_INTERNAL_ERROR,
  authenticationMessage
} from '../core/wire'
import { channels, routeOf, tracing, type HandshakeEvent, type HandshakeTraceContext } from '../core/diagnostics'
import { HandshakeDeadlines, TIMED_OUT } from './deadlines'
import { refuseSocket } from './refusal'
import { finishRecovery, startRecovery } from '../connection/replay'
import { DETAIL_TOO_MANY_RESUMES } from '../connection/resume-budget'

export const DETAIL_TOO_MANY_CONNECTIONS = 'Too many connections'
export const DETAIL_HANDSHAKE_TIMED_OUT = 'Handshake timed out'
export const DETAIL_SHUTTING_DOWN = 'Server shutting down'

/** A refusal the hook itself decides (origin, connection caps, failures), with the standard status text. */
function refusal (statusCode: number, detail: string): AuthenticationResult<unknown, unknown> {
  return new AuthenticationResult({ isAuthenticated: false, statusCode, data: { detail } })
}

function isResult (value: unknown): value is AuthenticationResult<unknown, unknown> {
  const result = value as AuthenticationResult<unknown, unknown> | null
  return result !== null && typeof result === 'object' && typeof result.isAuthenticated === 'boolean' &&
    Number.isInteger(result.statusCode) && typeof result.statusText === 'string'
}

/** The authentication message of a result; throws when its `data` cannot be serialized (a BigInt, a cycle). */
function messageFor (result: AuthenticationResult<unknown, unknown>): string {
  const data = result.data as { detail?: unknown } | null
  if (result.statusCode === 200 && result.statusText === 'OK' && data !== null && typeof data === 'object' &&
    data.detail === 'OK' && Object.keys(data).length === 1) {
    return AUTHENTICATION_OK_MESSAGE
  }
  return authenticationMessage(result.statusCode, result.statusText, result.data)
}

/** What the pipeline and admission decided: the result, its message, and the admitted connection. */
interface Outcome {
  result: AuthenticationResult<unknown, unknown>
  message: string
  connection: SocketConnection | null
}

function failed (): Outcome {
  const result = refusal(500, DETAIL_INTERNAL_ERROR)
  return { result, message: messageFor(result), connection: null }
}

function releaseLate (outcome: Outcome): void {
  outcome.connection?.release()
}

function noop (): void {}

function isGroupList (groups: unknown): groups is readonly string[] {
  if (!Array.isArray(groups)) return false
  for (let i = 0; i < groups.length; i++) if (typeof groups[i] !== 'string' || groups[i] === '') return false
  return true
}

/**
 * The route's `preValidation` hook: runs the pipeline on the upgrade request (or the HTTP request) before
 * any handler, and applies the result. Success sets `request.user`/`request.obj` and lets the request go
 * on; refusal answers it here, so the route's handler never runs. The socket's life from admission on
 * belongs to its SocketConnection (connection/connection.ts).
 */
export function createHandshakeHook (
  route: RouteHandshake,
  wss: WebSocketServer,
  services: ConnectionServices,
  handshakeTimeout: number
) {
  const authenticator = route.authenticator
  const deadlines = handshakeTimeout > 0 ? new HandshakeDeadlines<Outcome>(handshakeTimeout) : null
  const scope: ConnectionScope = { route, services }

  return async function chanxHandshake (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const started = channels.handshake.hasSubscribers ? performance.now() : 0
    if (services.guard.draining) {
      // app.close() began (ConnectionGuard.drain): refused before the pipeline runs; 4503 tells a client to come back.
      const result = refusal(503, DETAIL_SHUTTING_DOWN)
      if (!request.ws || route.rejectUpgrade || !route.websocket) {
        await reply.code(503).send(result.data)
        return
      }
      refuseSocket(request, reply, result, route, wss)
      return
    }
    const pipeline = tracing.handshake.hasSubscribers ? tracePipeline(request, reply.raw, route, scope) : runPipeline(request, reply.raw, route, scope)
    let outcome: Outcome | typeof TIMED_OUT = deadlines !== null ? await deadlines.race(pipeline) : await pipeline
    if (outcome === TIMED_OUT) {
      request.log.warn({ handshakeTimeout }, 'fastify-chanx: the handshake did not complete within handshakeTimeout')
      // The pipeline may still settle: what it admitted then is given back at once, never opened.
      pipeline.then(releaseLate, noop)
      const result = refusal(503, DETAIL_HANDSHAKE_TIMED_OUT)
      outcome = { result, message: messageFor(result), connection: null }
    }
    const { result, connection } = outcome
    if (started !== 0 && channels.handshake.hasSubscribers) {
      const event: HandshakeEvent = {
        request, route: routeOf(request), websocket: request.ws && route.websocket, statusCode: result.statusCode, durationMs: performance.now() - started
      }
      channels.handshake.publish(event)
    }

    if (result.isAuthenticated) {
      request.user = result.user as FastifyRequest['user']
      request.obj = result.obj as FastifyRequest['obj']
      if (connection !== null) setAccepted(request.raw, connection)
      return
    }

    if (!request.ws || route.rejectUpgrade || !route.websocket) {
      if (result.statusCode === 401 && authenticator.challenge !== undefined) {
        reply.header('www-authenticate', authenticator.challenge)
      }
      await reply.code(result.statusCode).send(result.data)
      return
    }

    refuseSocket(request, reply, result, route, wss)
  }
}

/** The pipeline inside the `fastify-chanx.handshake` TracingChannel (docs/observability.md). */
function tracePipeline (request: FastifyRequest, response: ServerResponse, route: RouteHandshake, scope: ConnectionScope): Promise<Outcome> {
  const context: HandshakeTraceContext = { request, route: routeOf(request) }
  return tracing.handshake.tracePromise(async () => {
    const outcome = await runPipeline(request, response, route, scope)
    context.statusCode = outcome.result.statusCode
    return outcome
  }, context)
}

/** Origin, authenticators, permissions, object; then, for an accepted socket, admission. Never throws. */
async function runPipeline (request: FastifyRequest, response: ServerResponse, route: RouteHandshake, scope: ConnectionScope): Promise<Outcome> {
  let result: AuthenticationResult<unknown, unknown>
  let message: string
  try {
    // Cross-site WebSocket hijacking: refused before any credential is looked at.
    const outcome: unknown = route.originCheck !== null && request.ws && !await route.originCheck(request)
      ? refusal(403, DETAIL_ORIGIN_REFUSED)
      : await route.authenticator.authenticate(request)
    if (!isResult(outcome)) {
      request.log.error({ result: typeof outcome }, 'fastify-chanx: the authenticator did not return an AuthenticationResult')
      return failed()
    }
    result = outcome
    // Serialized here, once, whenever it will be sent: `data` that JSON cannot carry (a BigInt, a cycle)
    // is the server's fault, answered 500 like a throw, never with the serializer's own message.
    message = !result.isAuthenticated || (request.ws && route.websocket) ? messageFor(result) : ''
  } catch (err) {
    request.log.error({ err }, 'fastify-chanx: the handshake pipeline threw')
    return failed()
  }
  if (result.isAuthenticated && request.ws && route.websocket) {
    return await admitSocket(request, response, result, route.sendAuthenticationMessage ? message : null, route, scope)
  }
  return { result, message, connection: null }
}

/**
 * Takes the user's and the IP's connection slots and joins the socket's groups, all before the socket
 * opens: a client that has read "OK" is a member of every group already and misses no broadcast. If the
 * client's connection drops meanwhile, the connection is released at that moment.
 */
async function admitSocket (
  request: FastifyRequest,
  response: ServerResponse,
  result: AuthenticationResult<unknown, unknown>,
  message: string | null,
  route: RouteHandshake,
  scope: ConnectionScope
): Promise<Outcome> {
  const { services } = scope
  let key: string | null
  try {
    key = keyOfUser(services.userKey, result.user)
    if (key !== null && typeof key !== 'string') throw new TypeError('userKey(user) must return a string, null or undefined')
  } catch (err) {
    request.log.error({ err }, 'fastify-chanx: userKey(user) failed')
    return failed()
  }
  const connection = new SocketConnection(request, key, scope)
  if (!connection.admit()) {
    const refused = refusal(429, DETAIL_TOO_MANY_CONNECTIONS)
    return { result: refused, message: messageFor(refused), connection: null }
  }
  connection.message = message
  connection.watchTransport(request.raw, response)
  const recovery = route.history ? startRecovery(connection, request, services.guard.resumes) : null
  if (route.history && recovery === null) {
    connection.release()
    const refused = refusal(429, DETAIL_TOO_MANY_RESUMES)
    return { result: refused, message: messageFor(refused), connection: null }
  }
  try {
    const groups = route.groups === undefined
      ? []
      : await route.groups({ user: result.user as FastifyRequest['user'], obj: result.obj as FastifyRequest['obj'], params: request.params, request })
    if (!isGroupList(groups)) throw new TypeError('groups(ctx) must return an array of group names')
    await connection.joinAll(groups)
    if (recovery !== null) await finishRecovery(recovery, connection, services.hub, groups)
  } catch (err) {
    connection.release()
    request.log.error({ err }, 'fastify-chanx: joining the socket\'s groups failed')
    return failed()
  }
  return { result, message: message ?? '', connection }
}

/**
 * The connection waiting on an accepted upgrade request, from admission until its socket opens. A weak map,
 * not a symbol on the request: a property added to every IncomingMessage would stay for the socket's life.
 */
const accepted = new WeakMap<IncomingMessage, SocketConnection>()

function setAccepted (raw: IncomingMessage, connection: SocketConnection): void {
  accepted.set(raw, connection)
}

/**
 * The listener attached once to `app.websocketServer`, which @fastify/websocket makes emit 'connection'
 * right before it calls the route's handler: the authentication message is queued first, so it reaches the
 * client before anything the handler sends.
 */
export function onSocketConnection (this: WebSocketServer, socket: WebSocket, raw: IncomingMessage): void {
  const connection = accepted.get(raw)
  if (connection === undefined) return
  accepted.delete(raw)
  connection.open(socket)
}
