import type { FastifyInstance, FastifyPluginAsync, preValidationHookHandler, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { MissingWebsocketError } from './core/errors'
import { createChannels } from './channels/options'
import { createServerApi } from './server-api'
import { DEFAULT_HISTORY } from './channels/history/model'
import { createHistoryStore } from './channels/history/setup'
import { ConnectionGuard } from './connection/guard'
import { createHandshakeHook, onSocketConnection } from './handshake/hook'
import type { ConnectionServices } from './connection/connection'
import { resolvePluginOptions } from './handshake/plugin-options'
import type { FastifyChanxOptions } from './options'
import { resolveRoute } from './handshake/route-options'
import { createRequestSerializer } from './handshake/redaction'
import { DEFAULT_MAX_PAYLOAD } from './core/limits'
import { guardSubprotocols } from './handshake/subprotocols'
import { maxPayloadOf, setMaxPayload } from './core/ws-internals'
import { checkWs } from './core/ws-canary-internals'
import { createUnseenRouteGuard, guardUnseenUpgrades, markRoute } from './handshake/unseen-routes'
import { buildAsyncApiDocument, type AsyncApiDocument } from './asyncapi/document'
import { resolveAsyncApiOptions, resolvePlaygroundOptions } from './asyncapi/options'
import { recordRoute, type SocketRouteRecord } from './asyncapi/routes'
import { serveAsyncApi, servePlayground } from './asyncapi/served'
import type {} from '@fastify/websocket'
import './handshake/route-types'

/** ws's own default frame limit (100 MiB): when it is still in place, nobody configured one. */
const WS_DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024

function prependHook (existing: RouteOptions['preValidation'], hook: preValidationHookHandler): preValidationHookHandler[] {
  if (existing === undefined) return [hook]
  return Array.isArray(existing) ? [hook, ...existing] : [hook, existing as preValidationHookHandler]
}

const plugin: FastifyPluginAsync<FastifyChanxOptions> = async function fastifyChanx (fastify: FastifyInstance, options) {
  const defaults = resolvePluginOptions(options)
  if (!fastify.hasDecorator('websocketServer')) throw new MissingWebsocketError()

  // `user` is left to @fastify/jwt, which decorates it unconditionally (so decorating it here would break
  // registering @fastify/jwt after this plugin): the pipeline assigns request.user on every route it runs on.
  if (!fastify.hasRequestDecorator('obj')) fastify.decorateRequest('obj', null as never)

  const asyncapiOptions = resolveAsyncApiOptions(options.asyncapi)
  const playgroundOptions = resolvePlaygroundOptions(options.playground)
  const socketRoutes: SocketRouteRecord[] = []
  const asyncapi = (): AsyncApiDocument => buildAsyncApiDocument(fastify, socketRoutes, asyncapiOptions)

  const wss = fastify.websocketServer
  // The canary of the reach-ins into ws (core/ws-internals.ts): fails registration if ws changed under them.
  await checkWs(wss)
  const { hub, presence } = await createChannels(options, fastify.log)
  if (defaults.history !== null) hub.useHistory(createHistoryStore(hub.layer, defaults.history))
  fastify.decorate('chanx', createServerApi(hub, defaults.userKey, fastify.log, asyncapi, presence))
  const guard = new ConnectionGuard(defaults.limits)
  const services: ConnectionServices = { guard, hub, userKey: defaults.userKey }
  // Frames are capped at 64 KiB unless configured (OWASP): ws itself enforces it, with 1009, before it
  // buffers a larger frame. A maxPayload given to @fastify/websocket is left alone.
  const ownsMaxPayload = maxPayloadOf(wss) === WS_DEFAULT_MAX_PAYLOAD
  if (ownsMaxPayload) setMaxPayload(wss, DEFAULT_MAX_PAYLOAD)
  const credentialProtocols = new Set<string>()
  guardSubprotocols(wss, credentialProtocols)
  guardUnseenUpgrades(wss, fastify.log)
  // Also covers routes declared earlier in this context: Fastify merges instance hooks into routes at ready.
  fastify.addHook('onRequest', createUnseenRouteGuard(defaults.httpRoutes === 'all'))
  wss.on('connection', onSocketConnection)
  // The drain (ConnectionGuard.drain, docs/lifecycle.md "Draining on close") must run before
  // @fastify/websocket's preClose hook, which closes every client with no code (1005): Fastify runs preClose
  // hooks in the order they were added, and @fastify/websocket is registered before this plugin. Avvio runs
  // onClose handlers last-added first, and Fastify adds its own close step (mark the routes closed, run the
  // preClose hooks, stop the server) as the app becomes ready (avvio's preReady); an onClose hook added in
  // onReady therefore runs before that step (test/lifecycle-drain.test.ts checks the order), while the upgrade path still answers (so new handshakes get our
  // documented refusal, not a bare 503 or a reset).
  fastify.addHook('onReady', function armDrain (done) {
    fastify.addHook('onClose', () => guard.drain(defaults.closeGracePeriod))
    done()
  })
  // Also a preClose hook, for an app closed before it was ready (nothing is open then; it only stops handshakes).
  fastify.addHook('preClose', (done) => {
    guard.draining = true
    done()
  })
  fastify.addHook('onClose', async () => {
    wss.off('connection', onSocketConnection)
    guard.close()
    await presence?.close()
    await hub.close()
  })

  fastify.addHook('onRoute', (routeOptions) => {
    const route = resolveRoute(routeOptions, defaults)
    markRoute(routeOptions)
    if (route === null) return
    if (route.history && hub.history === null) hub.useHistory(createHistoryStore(hub.layer, DEFAULT_HISTORY))
    const hook = createHandshakeHook(route, wss, services, defaults.handshakeTimeout) as preValidationHookHandler
    guard.requirePeriod(route.reauthenticateInterval)
    routeOptions.preValidation = prependHook(routeOptions.preValidation, hook)
    for (const prefix of route.credentialProtocols) credentialProtocols.add(prefix.toLowerCase())
    const routeMaxPayload = route.router?.maxPayload ?? 0
    if (ownsMaxPayload && routeMaxPayload > (maxPayloadOf(wss) ?? 0)) setMaxPayload(wss, routeMaxPayload)
    if (route.websocket) socketRoutes.push(recordRoute(routeOptions, route))
    if (route.websocket || route.headTwin) {
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
export type { ChanxTypes, ChanxUser, ChanxObject, GroupContext, ObjectLoader } from './core/user-types'
export type { ChanxRouteOptions } from './handshake/route-types'
export {
  AuthenticationResult,
  ChanxAuthenticator,
  type Authenticator,
  type AuthenticationResultInit,
  type AuthenticatorClass,
  type PipelineConfig
} from './auth/authenticator'
export { AllowAny, DenyAll, IsAuthenticated, and, not, or, type AuthenticatedPermission, type Permission } from './auth/permissions'
export { sessionAuthentication, type SessionAuthenticationOptions } from './auth/session-authentication'
export { jwtAuthentication, type JwtAuthenticationOptions, type JwtCookieOptions, type JwtPayload } from './auth/jwt-authentication'
export {
  AuthenticationFailed,
  ChanxRefusal,
  InvalidOptionError,
  MissingDependencyError,
  MissingWebsocketError,
  NotAuthenticated,
  NotFound,
  PermissionDenied
} from './core/errors'
export { refusalCloseCode } from './core/wire'
export { DETAIL_BINARY, DETAIL_HANDLER_FAILED, DETAIL_INVALID_JSON, DETAIL_RATE_LIMITED } from './core/wire'
export { defineRoute, defineSocketRoute } from './messages/define-route'
export type {
  RateLimit,
  ChanxMessage,
  ChanxMessageRouteOptions,
  LoadedObject,
  MessageError,
  MessageHandler,
  MessageOf,
  MessageSchema,
  MessageSchemas,
  RouteDefinition,
  RouteObject,
  RouteParams,
  RouteRequest,
  SchemaStatic,
  SinclairSchema,
  TypeBoxSchema,
  UserAfter,
  BroadcastTarget,
  SocketContext,
  SocketRouteDefinition,
  SocketRouteOptions
} from './messages/types'
export type { BroadcastMessage, ChanxServerApi } from './server-api'
export type { ChannelOptions, RedisOption } from './channels/options'
export type { PresenceInfo, PresenceOption, PresenceOptions } from './channels/presence'
export type { ChannelLayer, ChannelListener, ChannelLogger } from './channels/layer'
export { ChannelHub, type ChannelMember, type BroadcastOptions } from './channels/hub'
export type { ChannelSecret } from './channels/secret'
export { MemoryBroker, MemoryLayer } from './channels/memory-layer'
export {
  createRedisLayer, RedisLayer, type RedisClientLike, type RedisClusterLike, type RedisClusterNode, type RedisClusterTarget,
  type RedisLayerAccess, type RedisLayerOptions, type RedisLayerTarget
} from './channels/redis/layer'
export * from './channels/errors'
export { setCredentialExpiry } from './core/credentials'
export type { AllowedOrigins } from './handshake/origin'
export type { UserKeyFunction } from './core/identity'
export type { AsyncApiDocument } from './asyncapi/document'
export type { AsyncApiInfo, AsyncApiOptions, AsyncApiServer, PlaygroundOptions } from './asyncapi/options'
export type { AuthenticatorScheme, CredentialSource } from './auth/authenticator'
