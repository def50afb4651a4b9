import type { IncomingMessage } from 'node:http'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify'
import type {} from '@fastify/websocket'
import type { WebSocketServer } from 'ws'
import { UnseenRouteError } from '../core/errors'
import { DETAIL_INTERNAL_ERROR } from '../core/wire'
import { gateUpgrades } from '../core/ws-internals'

/**
 * Fail closed on routes the plugin never saw. Fastify runs `onRoute` hooks only for routes declared after
 * them, so a route declared before `await app.register(chanx)` (or after an unawaited one, or in a context
 * made before the plugin) keeps its `authentication`, `permissions`, ... as dead options: its handler would
 * run for anyone. Its options cannot be recovered at request time, so such a route is refused, not guessed.
 * - Every route the plugin's `onRoute` hook sees is marked on its config.
 * - An instance `onRequest` hook, which Fastify merges at ready time into routes declared earlier in the same
 *   context too, refuses upgrades (and, with `httpRoutes: 'all'`, HTTP requests) to unmarked routes.
 * - The socket server refuses any upgrade that hook did not pass: routes in contexts the plugin's hooks
 *   never reach, whose handler would otherwise get an unguarded socket.
 */
const kSeenRoute = Symbol('fastify-chanx.seenRoute')
/**
 * Upgrade requests the hook passed, until the socket server checks them (then forgotten). Not a symbol on
 * the request: a property added to every IncomingMessage stays with it for the socket's whole life.
 */
const passed = new WeakSet<IncomingMessage>()

/** Marks a route as seen (on a copy of its config: one config object may be shared by several routes). */
export function markRoute (routeOptions: RouteOptions): void {
  routeOptions.config = { ...(routeOptions.config as object | undefined), [kSeenRoute]: true } as RouteOptions['config']
}

/** The path of a URL, without its query string (which may carry a token). */
function pathOf (url: string | undefined): string {
  const path = url ?? ''
  const question = path.indexOf('?')
  return question === -1 ? path : path.slice(0, question)
}

/**
 * The instance `onRequest` hook; `checkHttp` with `httpRoutes: 'all'`, where every HTTP route runs the pipeline.
 * Callback style, not async: it runs on every request, and a returned promise costs each one a microtask hop.
 */
export function createUnseenRouteGuard (checkHttp: boolean) {
  return function chanxUnseenRoute (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const upgrade = request.ws
    if (!upgrade && !checkHttp) {
      done()
      return
    }
    if (request.is404 || (request.routeOptions.config as unknown as Record<symbol, unknown>)[kSeenRoute] === true) {
      if (upgrade) passed.add(request.raw)
      done()
      return
    }
    const err = new UnseenRouteError(`route ${request.method} ${request.routeOptions.url ?? pathOf(request.url)}`)
    request.log.error({ err }, 'fastify-chanx: refused a request to a route it never saw declared')
    // Answered here: `done` is not called, so the request goes no further.
    reply.code(500).send({ detail: DETAIL_INTERNAL_ERROR })
  }
}

const UNSEEN_RESPONSE = (() => {
  const body = JSON.stringify({ detail: DETAIL_INTERNAL_ERROR })
  return 'HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
})()

/** Refuses, on the socket server itself, every upgrade the plugin's hook did not pass: its handler never runs. */
export function guardUnseenUpgrades (wss: WebSocketServer, log: FastifyBaseLogger): void {
  gateUpgrades(wss, (req, stream) => {
    // ws completes one upgrade per request: the mark is needed once.
    if (passed.delete(req)) return true
    const err = new UnseenRouteError(`the socket route ${String(req.method)} ${pathOf(req.url)}`)
    log.error({ err }, 'fastify-chanx: refused an upgrade to a route it never saw declared')
    stream.once('finish', () => stream.destroy())
    stream.end(UNSEEN_RESPONSE)
    return false
  }, (err) => log.error({ err }, 'fastify-chanx: a dependency changed under a reach-in (core/ws-internals.ts)'))
}
