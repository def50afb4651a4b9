import diagnostics from 'node:diagnostics_channel'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

/**
 * fastify-chanx's diagnostics channels as Prometheus series, with prom-client (docs/observability.md). This
 * file is the recipe the docs show: copy it into your app. The channels are per process, so are the series.
 */

type Event = Record<string, any>

export interface ChanxMetrics {
  readonly registry: Registry
  /** Stops listening (the series stay in the registry). */
  close (): void
}

export function chanxMetrics (registry = new Registry()): ChanxMetrics {
  const open = new Gauge({ name: 'chanx_connections_open', help: 'Open sockets', labelNames: ['route'], registers: [registry] })
  const handshakes = new Counter({ name: 'chanx_handshakes_total', help: 'Handshakes by outcome status', labelNames: ['route', 'status'], registers: [registry] })
  const handshakeSeconds = new Histogram({
    name: 'chanx_handshake_duration_seconds',
    help: 'Handshake pipeline duration',
    labelNames: ['route'],
    registers: [registry],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]
  })
  const frames = new Counter({ name: 'chanx_frames_total', help: 'Frames by action and outcome', labelNames: ['route', 'action', 'outcome'], registers: [registry] })
  const closes = new Counter({ name: 'chanx_closes_total', help: 'Socket closes by code', labelNames: ['route', 'code'], registers: [registry] })
  const broadcasts = new Counter({ name: 'chanx_broadcasts_total', help: 'Broadcasts by outcome', labelNames: ['outcome'], registers: [registry] })
  const deliveries = new Counter({ name: 'chanx_broadcast_deliveries_total', help: 'Copies delivered to this process\'s sockets', registers: [registry] })
  const broadcastSeconds = new Histogram({
    name: 'chanx_broadcast_duration_seconds',
    help: 'Until every publish of a broadcast settled',
    registers: [registry],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]
  })
  const layerUp = new Gauge({ name: 'chanx_layer_up', help: '1 while the channel layer is connected', labelNames: ['layer'], registers: [registry] })
  const recoveries = new Counter({ name: 'chanx_recoveries_total', help: 'Resumes by outcome and reason', labelNames: ['outcome', 'reason'], registers: [registry] })
  const replayed = new Counter({ name: 'chanx_replayed_messages_total', help: 'Messages replayed by resumes', registers: [registry] })
  const presenceWrites = new Counter({ name: 'chanx_presence_writes_total', help: 'Presence writes by outcome', labelNames: ['outcome'], registers: [registry] })

  const listeners: Array<[string, (message: unknown) => void]> = [
    ['fastify-chanx.connection.open', (e) => open.inc({ route: (e as Event).route })],
    ['fastify-chanx.connection.close', (e) => {
      const { route, code } = e as Event
      open.dec({ route })
      closes.inc({ route, code: String(code) })
    }],
    ['fastify-chanx.handshake', (e) => {
      const { route, statusCode, durationMs } = e as Event
      handshakes.inc({ route, status: String(statusCode) })
      handshakeSeconds.observe({ route }, durationMs / 1000)
    }],
    ['fastify-chanx.frame', (e) => {
      const { route, action, outcome } = e as Event
      // A client chooses the action it sends: an unknown one is not a label value (unbounded cardinality).
      frames.inc({ route, action: action === null || outcome === 'unknown_action' ? '' : action, outcome })
    }],
    ['fastify-chanx.broadcast', (e) => {
      const { localDeliveries, durationMs, error } = e as Event
      broadcasts.inc({ outcome: error === null ? 'ok' : 'failed' })
      deliveries.inc(localDeliveries)
      broadcastSeconds.observe(durationMs / 1000)
    }],
    ['fastify-chanx.layer', (e) => layerUp.set({ layer: (e as Event).layer }, (e as Event).state === 'back' ? 1 : 0)],
    ['fastify-chanx.recovery', (e) => {
      const { recovered, reason, replayed: count } = e as Event
      recoveries.inc({ outcome: recovered ? 'recovered' : 'failed', reason: reason ?? '' })
      replayed.inc(count)
    }],
    ['fastify-chanx.presence', (e) => presenceWrites.inc({ outcome: (e as Event).ok ? 'ok' : 'failed' })]
  ]
  for (const [name, listener] of listeners) diagnostics.subscribe(name, listener)
  return {
    registry,
    close: () => { for (const [name, listener] of listeners) diagnostics.unsubscribe(name, listener) }
  }
}
