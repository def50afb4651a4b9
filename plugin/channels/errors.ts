import createError from '@fastify/error'

/**
 * Errors of the channel layers and the group hub. Like core/errors.ts: each is made once with
 * @fastify/error, so callers test `err.code`, never message text.
 */

/** The Redis channel layer could not reach Redis when it was created (registration fails with it). */
export const ChannelLayerUnreachableError = createError<[string, string, { cause: unknown }?]>(
  'FST_CHANX_CHANNEL_LAYER_UNREACHABLE',
  'fastify-chanx: the Redis channel layer could not connect to %s: %s',
  500
)

/** A subscription (or a cluster-wide count) did not complete in time, e.g. while Redis is down. */
export const ChannelLayerTimeoutError = createError<[string, number]>(
  'FST_CHANX_CHANNEL_LAYER_TIMEOUT',
  'fastify-chanx: %s did not complete within %d ms',
  503
)

/** A broadcast was delivered locally but could not be published to the other processes. */
export const ChannelLayerPublishError = createError<[string, string, { cause: unknown }?]>(
  'FST_CHANX_CHANNEL_LAYER_PUBLISH_FAILED',
  'fastify-chanx: could not publish to %s: %s',
  503
)

/**
 * A Redis command (a publish, a presence write or read, a barrier marker) was not sent because the layer's
 * publisher is not connected and ready: it never runs, now or after recovery.
 */
export const ChannelLayerNotReadyError = createError<[string, string]>(
  'FST_CHANX_CHANNEL_LAYER_NOT_READY',
  'fastify-chanx: %s was not sent: %s',
  503
)

/** The layer or hub was closed; nothing more can be joined or published. */
export const ChannelLayerClosedError = createError(
  'FST_CHANX_CHANNEL_LAYER_CLOSED',
  'fastify-chanx: the channel layer is closed',
  500
)

/** The Redis channel layer was asked for but ioredis is not installed (it is an optional peer). */
export const MissingIoredisError = createError(
  'FST_CHANX_MISSING_IOREDIS',
  'fastify-chanx: the Redis channel layer needs ioredis 6; install it with `npm install ioredis`',
  500
)

/** A group name, user key, message or close code passed to the hub has the wrong shape. */
export const InvalidChannelArgumentError = createError<[string]>(
  'FST_CHANX_INVALID_CHANNEL_ARGUMENT',
  'fastify-chanx: %s',
  500,
  TypeError
)

/** app.chanx.presence() was called but the plugin was registered without the `presence` option. */
export const PresenceDisabledError = createError(
  'FST_CHANX_PRESENCE_DISABLED',
  'fastify-chanx: presence is off; register the plugin with presence: true (or { ttl }) to use app.chanx.presence()',
  500
)

/**
 * What a failed publish's caller knows (`err.outcome`): `'not_sent'`, Redis never ran it and nothing runs it
 * later, so it is not delivered; `'unknown'`, it was sent and may have run (a timeout, a connection that
 * broke with the command in flight), so a retry may deliver it twice.
 */
export type PublishOutcome = 'not_sent' | 'unknown'

/** Per target group of a broadcast to several groups that rejected (`err.groups`). */
export type GroupOutcome = 'published' | PublishOutcome
