import type { IncomingMessage } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type {} from '@fastify/websocket'
import type { WebSocket, WebSocketServer } from 'ws'
import { AuthenticationResult } from '../auth/authenticator'
import { SocketMember } from '../channels/member'
import type { ConnectionGuard } from '../connection/guard'
import type { ChannelHub } from '../channels/hub'
import { closeWithRefusal, credentialExpiry, watchCredentials } from '../connection/credential-lifetime'
import type { UserKeyFunction } from '../core/identity'
import type { RouteHandshake } from './route-options'
import { DETAIL_ORIGIN_REFUSED } from './origin'
import {
  AUTHENTICATION_OK_MESSAGE,
  DETAIL_INTERNAL_ERROR,
  authenticationMessage
} from '../core/wire'
import { upgradeSocket } from '../core/ws-internals'
import { attachRouter } from '../messages/dispatch'

/** Set on the raw upgrade request when the handshake succeeded: the message to send when the socket opens. */
const kAccepted = Symbol('fastify-chanx.accepted')

interface AcceptedUpgrade {
  message: string | null
  request: FastifyRequest
  route: RouteHandshake
  /** The socket in the channel hub: its groups are joined already. */
  member: SocketMember
  /** Gives back the connection slots and leaves every group; idempotent. */
  release: () => void
}

type RawWithHandshake = IncomingMessage & { [kAccepted]?: AcceptedUpgrade }

function noop (): void {}

export const DETAIL_TOO_MANY_CONNECTIONS = 'Too many connections'

/** A refusal the hook itself decides (origin, connection caps, failures), with the standard status text. */
function refusal (statusCode: number, detail: string): AuthenticationResult<unknown, unknown> {
  return new AuthenticationResult({ isAuthenticated: false, statusCode, data: { detail } })
}

function isResult (value: unknown): value is AuthenticationResult<unknown, unknown> {
  const result = value as AuthenticationResult<unknown, unknown> | null
  return result !== null && typeof result === 'object' && typeof result.isAuthenticated === 'boolean' &&
    Number.isInteger(result.statusCode) && typeof result.statusText === 'string'
}

function messageFor (result: AuthenticationResult<unknown, unknown>): string {
  const data = result.data as { detail?: unknown } | null
  if (result.statusCode === 200 && result.statusText === 'OK' && data !== null && typeof data === 'object' &&
    data.detail === 'OK' && Object.keys(data).length === 1) {
    return AUTHENTICATION_OK_MESSAGE
  }
  return authenticationMessage(result.statusCode, result.statusText, result.data)
}

/**
 * The route's `preValidation` hook: runs the pipeline on the upgrade request (or the HTTP request) before
 * any handler, and applies the result. Success sets `request.user`/`request.obj` and lets the request go
 * on; refusal answers it here, so the route's handler never runs.
 */
export function createHandshakeHook (
  route: RouteHandshake,
  wss: WebSocketServer,
  guard: ConnectionGuard,
  userKey: UserKeyFunction,
  hub: ChannelHub
) {
  const authenticator = route.authenticator
  const originCheck = route.originCheck

  return async function chanxHandshake (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    let result: AuthenticationResult<unknown, unknown>
    try {
      // Cross-site WebSocket hijacking: refused before any credential is looked at.
      const outcome: unknown = originCheck !== null && request.ws && !await originCheck(request)
        ? refusal(403, DETAIL_ORIGIN_REFUSED)
        : await authenticator.authenticate(request)
      if (isResult(outcome)) {
        result = outcome
      } else {
        request.log.error({ result: typeof outcome }, 'fastify-chanx: the authenticator did not return an AuthenticationResult')
        result = refusal(500, DETAIL_INTERNAL_ERROR)
      }
    } catch (err) {
      request.log.error({ err }, 'fastify-chanx: the handshake pipeline threw')
      result = refusal(500, DETAIL_INTERNAL_ERROR)
    }

    if (result.isAuthenticated && request.ws && route.websocket) {
      result = await admitSocket(request, result, route, guard, userKey, hub)
    }

    if (result.isAuthenticated) {
      request.user = result.user as FastifyRequest['user']
      request.obj = result.obj as FastifyRequest['obj']
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

/**
 * Takes the user's and the IP's connection slots and joins the socket's groups, all before the socket
 * opens: a client that has read "OK" is a member of every group already and misses no broadcast.
 */
async function admitSocket (
  request: FastifyRequest,
  result: AuthenticationResult<unknown, unknown>,
  route: RouteHandshake,
  guard: ConnectionGuard,
  userKey: UserKeyFunction,
  hub: ChannelHub
): Promise<AuthenticationResult<unknown, unknown>> {
  const key = userKey(result.user) ?? null
  const releaseSlots = guard.admit(request, key)
  if (releaseSlots === null) return refusal(429, DETAIL_TOO_MANY_CONNECTIONS)
  const member = new SocketMember(key, hub, guard, request.log)
  let released = false
  const release = (): void => {
    if (released) return
    released = true
    releaseSlots()
    member.leaveAll()
  }
  try {
    const groups = route.groups === undefined
      ? []
      : await route.groups({ user: result.user as FastifyRequest['user'], obj: result.obj as FastifyRequest['obj'], params: request.params, request })
    if (!Array.isArray(groups) || groups.some((group) => typeof group !== 'string' || group === '')) {
      throw new TypeError('groups(ctx) must return an array of group names')
    }
    await Promise.all([hub.attach(member), ...groups.map((group: string) => member.join(group))])
  } catch (err) {
    release()
    request.log.error({ err }, 'fastify-chanx: joining the socket\'s groups failed')
    return refusal(500, DETAIL_INTERNAL_ERROR)
  }
  // Released when the socket closes, or when the connection drops before it opens.
  request.raw.socket?.once('close', release)
  ;(request.raw as RawWithHandshake)[kAccepted] = {
    message: route.sendAuthenticationMessage ? messageFor(result) : null,
    request,
    route,
    member,
    release
  }
  return result
}

/** Completes the upgrade, sends the refusal, and closes with 4000 + status. Nothing the client sends is read. */
function refuseSocket (
  request: FastifyRequest,
  reply: FastifyReply,
  result: AuthenticationResult<unknown, unknown>,
  route: RouteHandshake,
  wss: WebSocketServer
): void {
  reply.hijack()
  try {
    upgradeSocket(wss, request.raw, (socket: WebSocket) => {
      socket.on('error', noop)
      closeWithRefusal(socket, result.statusCode, result.statusText, result.data, route.sendAuthenticationMessage)
    })
  } catch (err) {
    request.log.error({ err }, 'fastify-chanx: could not complete the refused upgrade')
    request.raw.socket?.destroy()
  }
}

/**
 * The listener attached once to `app.websocketServer`, which @fastify/websocket makes emit 'connection'
 * right before it calls the route's handler: the authentication message is queued first, so it reaches the
 * client before anything the handler sends.
 */
export function createConnectionListener (guard: ConnectionGuard) {
  return function onSocketConnection (socket: WebSocket, raw: IncomingMessage): void {
    const accepted = (raw as RawWithHandshake)[kAccepted]
    if (accepted === undefined) return
    ;(raw as RawWithHandshake)[kAccepted] = undefined
    socket.once('close', accepted.release)
    guard.track(socket)
    if (accepted.message !== null) socket.send(accepted.message)
    // What the groups received since the handshake joined them goes out right after the message.
    accepted.member.open(socket)
    // Synchronously, before ws can emit the first frame: nothing the client sent after the handshake is lost.
    if (accepted.route.router !== null) attachRouter(accepted.route.router, socket, accepted.request, accepted.member)
    watchLifetime(socket, accepted)
  }
}

function watchLifetime (socket: WebSocket, accepted: AcceptedUpgrade): void {
  const { request, route } = accepted
  if (route.reauthenticateInterval > 0 || credentialExpiry(request) !== undefined || route.router?.refreshCredentials != null) {
    watchCredentials(socket, request, {
      authenticator: route.authenticator,
      sendAuthenticationMessage: route.sendAuthenticationMessage,
      reauthenticateInterval: route.reauthenticateInterval
    })
  }
}
