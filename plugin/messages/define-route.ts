import type { TSchema } from '@sinclair/typebox'
import { InvalidOptionError } from '../core/errors'
import type { MessageSchemas, ObjectLoaderFor, SocketRouteDefinition, SocketRouteOptions } from './types'

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
