import diagnostics from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import { isThenable } from './validate'

/**
 * What the plugin publishes on Node's `diagnostics_channel` (docs/observability.md), as fastify and undici
 * do: plain channels for what happened, and `TracingChannel`s around the handshake pipeline and each
 * handler, so an OpenTelemetry instrumentation can make spans with no code of ours. Every publisher checks
 * `hasSubscribers` first and builds nothing when nobody listens.
 */

/** `fastify-chanx.handshake`: every handshake's outcome, a socket's or an HTTP route's that runs the pipeline. */
export interface HandshakeEvent {
  readonly request: FastifyRequest
  /** The route's URL pattern (`/ws/rooms/:roomId`). */
  readonly route: string
  /** true for a WebSocket upgrade, false for a plain HTTP request. */
  readonly websocket: boolean
  /** 200 when accepted, else the refusal's status (401, 403, 404, 429, 500, 503). */
  readonly statusCode: number
  /** From the hook's start to the decision, in milliseconds. */
  readonly durationMs: number
}

export type FrameOutcome =
  | 'handled' | 'failed' | 'validation_error' | 'invalid_json' | 'binary' | 'invalid_id' | 'unknown_action'
  | 'rate_limited' | 'dropped'

/** `fastify-chanx.frame`: each frame a socket sent, with what became of it. */
export interface FrameEvent {
  readonly request: FastifyRequest
  readonly route: string
  /** The frame's action; null when it had none that could be read (invalid JSON, binary, dropped unread). */
  readonly action: string | null
  readonly outcome: FrameOutcome
}

/** `fastify-chanx.broadcast`: one broadcast of this process (`ctx.broadcast`, `app.chanx.broadcast`). */
export interface BroadcastEvent {
  readonly groups: readonly string[]
  /** Copies delivered to sockets of this process (other processes deliver their own). */
  readonly localDeliveries: number
  /** Until every publish to the other processes settled, in milliseconds. */
  readonly durationMs: number
  /** Why a publish failed; null when every one succeeded. */
  readonly error: Error | null
}

/** `fastify-chanx.recovery`: a handshake that carried a resume (docs/recovery.md). */
export interface RecoveryEvent {
  readonly request: FastifyRequest
  readonly route: string
  readonly recovered: boolean
  /** The first reason a stream could not be recovered; null when recovered. */
  readonly reason: string | null
  /** Messages replayed to the socket. */
  readonly replayed: number
}

/** `fastify-chanx.layer`: the channel layer's connection state changes (one event per change). */
export interface LayerEvent {
  readonly layer: string
  readonly state: 'lost' | 'back'
  readonly error: Error | null
}

/** `fastify-chanx.presence`: one presence write of this process (a join, a leave, a heartbeat). */
export interface PresenceEvent {
  readonly group: string
  readonly ok: boolean
  readonly error: Error | null
}

/** `fastify-chanx.connection.open` and `fastify-chanx.connection.close`: a socket opened, a socket closed (with its code). */
export interface ConnectionEvent {
  readonly request: FastifyRequest
  readonly route: string
  /** The close code; 0 on open. */
  readonly code: number
}

/** The context of the `fastify-chanx.handshake` TracingChannel. */
export interface HandshakeTraceContext {
  readonly request: FastifyRequest
  readonly route: string
  /** Set once the pipeline decided: 200, or the refusal's status. */
  statusCode?: number
  error?: unknown
}

/** The context of the `fastify-chanx.handler` TracingChannel: one handler run. */
export interface HandlerTraceContext {
  readonly request: FastifyRequest
  readonly route: string
  readonly action: string
  /** What the handler returned (or resolved with). */
  result?: unknown
  error?: unknown
}

export const channels = {
  handshake: diagnostics.channel('fastify-chanx.handshake'),
  frame: diagnostics.channel('fastify-chanx.frame'),
  broadcast: diagnostics.channel('fastify-chanx.broadcast'),
  recovery: diagnostics.channel('fastify-chanx.recovery'),
  layer: diagnostics.channel('fastify-chanx.layer'),
  presence: diagnostics.channel('fastify-chanx.presence'),
  connectionOpen: diagnostics.channel('fastify-chanx.connection.open'),
  connectionClose: diagnostics.channel('fastify-chanx.connection.close')
} as const

export const tracing = {
  handshake: diagnostics.tracingChannel<object, HandshakeTraceContext>('fastify-chanx.handshake'),
  handler: diagnostics.tracingChannel<object, HandlerTraceContext>('fastify-chanx.handler')
} as const

/** The URL pattern of the request's route, for events (`request.routeOptions.url`). */
export function routeOf (request: FastifyRequest): string {
  return request.routeOptions?.url ?? request.url
}

/** `sent`, publishing the `fastify-chanx.broadcast` event once it settled (docs/observability.md). */
export function observeBroadcast (sent: Promise<void>, groups: readonly string[], localDeliveries: number, started: number): Promise<void> {
  const publish = (error: Error | null): void => {
    const event: BroadcastEvent = { groups, localDeliveries, durationMs: performance.now() - started, error }
    channels.broadcast.publish(event)
  }
  return sent.then(() => publish(null), (err: Error) => {
    publish(err)
    throw err
  })
}

/**
 * Runs `fn` inside the `fastify-chanx.handler` TracingChannel (start, end, and for a promise asyncStart and
 * asyncEnd; error when it throws or rejects), in the channel's stores, as `traceSync` and `tracePromise` do
 * for a function that may return either. Call it only when `tracing.handler.hasSubscribers`.
 */
export function traceHandler (context: HandlerTraceContext, fn: () => unknown): unknown {
  const channel = tracing.handler
  return channel.start.runStores(context, () => {
    let result: unknown
    try {
      result = fn()
    } catch (err) {
      context.error = err
      channel.error.publish(context)
      throw err
    } finally {
      channel.end.publish(context)
    }
    if (isThenable(result)) {
      Promise.resolve(result).then((value) => {
        context.result = value
        channel.asyncStart.publish(context)
        channel.asyncEnd.publish(context)
      }, (err: unknown) => {
        context.error = err
        channel.error.publish(context)
        channel.asyncStart.publish(context)
        channel.asyncEnd.publish(context)
      })
    } else {
      context.result = result
    }
    return result
  })
}
