import type { FastifyInstance, FastifyPluginAsync, preValidationHookHandler, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { MissingWebsocketError } from './errors'
import { createHub, createServerApi } from './channels'
import { ConnectionGuard } from './connection-guard'
import { createConnectionListener, createHandshakeHook } from './handshake'
import { resolvePluginOptions, resolveRoute, type FastifyChanxOptions } from './options'
import { createRequestSerializer } from './redaction'
import { DEFAULT_MAX_PAYLOAD } from './router'
import { guardSubprotocols } from './subprotocols'
import { buildAsyncApiDocument, recordRoute, resolveAsyncApiOptions, type AsyncApiDocument, type SocketRouteRecord } from './asyncapi'
import { resolvePlaygroundOptions, serveAsyncApi, servePlayground } from './playground'
import type {} from '@fastify/websocket'
import './types'

/** ws's own default frame limit (100 MiB): when it is still in place, nobody configured one. */
const WS_DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024

function prependHook (existing: RouteOptions['preValidation'], hook: preValidationHookHandler): preValidationHookHandler[] {
  if (existing === undefined) return [hook]
  return Array.isArray(existing) ? [hook, ...existing] : [hook, existing as preValidationHookHandler]
}

const plugin: FastifyPluginAsync<FastifyChanxOptions> = async function fastifyChanx (fastify: FastifyInstance, options) {
  const defaults = resolvePluginOptions(options)
  if (!fastify.hasDecorator('websocketServer')) throw new MissingWebsocketError()

  // @fastify/jwt decorates `user` too; both plugins then write the same property.
  if (!fastify.hasRequestDecorator('user')) fastify.decorateRequest('user', null as never)
  if (!fastify.hasRequestDecorator('obj')) fastify.decorateRequest('obj', null as never)

  const asyncapiOptions = resolveAsyncApiOptions(options.asyncapi)
  const playgroundOptions = resolvePlaygroundOptions(options.playground)
  const socketRoutes: SocketRouteRecord[] = []
  const asyncapi = (): AsyncApiDocument => buildAsyncApiDocument(fastify, socketRoutes, asyncapiOptions)

  const wss = fastify.websocketServer
  const hub = await createHub(options, fastify.log)
  fastify.decorate('chanx', createServerApi(hub, defaults.userKey, fastify.log, asyncapi))
  const guard = new ConnectionGuard(defaults.limits)
  const onSocketConnection = createConnectionListener(guard)
  // Frames are capped at 64 KiB unless configured (OWASP): ws itself enforces it, with 1009, before it
  // buffers a larger frame. A maxPayload given to @fastify/websocket is left alone.
  const ownsMaxPayload = wss.options.maxPayload === WS_DEFAULT_MAX_PAYLOAD
  if (ownsMaxPayload) wss.options.maxPayload = DEFAULT_MAX_PAYLOAD
  const credentialProtocols = new Set<string>()
  guardSubprotocols(wss, credentialProtocols)
  wss.on('connection', onSocketConnection)
  fastify.addHook('onClose', async () => {
    wss.off('connection', onSocketConnection)
    guard.close()
    await hub.close()
  })

  fastify.addHook('onRoute', (routeOptions) => {
    const route = resolveRoute(routeOptions, defaults)
    if (route === null) return
    const hook = createHandshakeHook(route, wss, guard, defaults.userKey, hub) as preValidationHookHandler
    routeOptions.preValidation = prependHook(routeOptions.preValidation, hook)
    for (const prefix of route.credentialProtocols) credentialProtocols.add(prefix)
    const routeMaxPayload = route.router?.maxPayload ?? 0
    if (ownsMaxPayload && routeMaxPayload > (wss.options.maxPayload ?? 0)) wss.options.maxPayload = routeMaxPayload
    if (route.websocket) {
      socketRoutes.push(recordRoute(routeOptions, route))
      // Fastify logs the upgrade URL ("incoming request") with the route's serializers: keep tokens out.
      const serializers = routeOptions.logSerializers ?? {}
      routeOptions.logSerializers = Object.assign(Object.create(Object.getPrototypeOf(serializers) as object), serializers, {
        req: createRequestSerializer(route.credentialParams)
      })
    }
  })

  if (asyncapiOptions.path !== null) serveAsyncApi(fastify, asyncapiOptions.path, asyncapi)
  if (playgroundOptions !== null) servePlayground(fastify, playgroundOptions, asyncapi)
}

/** Registers the handshake pipeline on every WebSocket route (and on HTTP routes that opt in). */
const fastifyChanx = fp(plugin, { fastify: '5.x', name: 'fastify-chanx' })

export default fastifyChanx
export { fastifyChanx }
export type { FastifyChanxOptions } from './options'
export type { ChanxTypes, ChanxUser, ChanxObject, ChanxRouteOptions, ObjectLoader } from './types'
export {
  AuthenticationResult,
  ChanxAuthenticator,
  type Authenticator,
  type AuthenticationResultInit,
  type AuthenticatorClass,
  type PipelineConfig
} from './authenticator'
export { AllowAny, DenyAll, IsAuthenticated, and, not, or, type Permission } from './permissions'
export { sessionAuthentication, type SessionAuthenticationOptions } from './session-authentication'
export { jwtAuthentication, type JwtAuthenticationOptions, type JwtCookieOptions } from './jwt-authentication'
export {
  AuthenticationFailed,
  ChanxRefusal,
  InvalidOptionError,
  MissingDependencyError,
  MissingWebsocketError,
  NotAuthenticated,
  NotFound,
  PermissionDenied
} from './errors'
export { refusalCloseCode } from './protocol'
export {
  defineSocketRoute,
  DETAIL_BINARY,
  DETAIL_HANDLER_FAILED,
  DETAIL_INVALID_JSON,
  DETAIL_RATE_LIMITED,
  type RateLimit,
  type ChanxMessage,
  type ChanxMessageRouteOptions,
  type LoadedObject,
  type MessageError,
  type MessageHandler,
  type MessageOf,
  type MessageSchemas,
  type RouteParams,
  type BroadcastTarget,
  type SocketContext,
  type SocketRouteDefinition,
  type SocketRouteOptions
} from './router'
export type { GroupContext } from './types'
export type { ChanxServerApi, ChannelOptions, RedisOption } from './channels'
export type { ChannelLayer, ChannelListener, ChannelLogger } from './channel-layer'
export { ChannelHub, type ChannelMember, type BroadcastOptions } from './groups'
export { MemoryBroker, MemoryLayer } from './memory-layer'
export { createRedisLayer, type RedisClientLike, type RedisLayerOptions } from './redis-layer'
export * from './channel-errors'
export { setCredentialExpiry } from './credential-lifetime'
export type { AllowedOrigins } from './origin'
export type { UserKeyFunction } from './identity'
export type { AsyncApiDocument, AsyncApiInfo, AsyncApiOptions, AsyncApiServer } from './asyncapi'
export type { PlaygroundOptions } from './playground'
export type { AuthenticatorScheme, CredentialSource } from './authenticator'
