import type { RouteOptions } from 'fastify'
import type { Permission } from '../auth/permissions'
import { InvalidOptionError } from '../core/errors'
import type {
  MessageOf,
  MessageSchemas,
  NoSchemas,
  ObjectLoaderFor,
  RouteDefinition,
  SocketRouteDefinition,
  SocketRouteOptions
} from './types'

/** The route's WebSocket handler: the router, attached when the socket opened, does the work. */
function chanxSocketHandler (): void {}

/**
 * Declares a typed socket route for `app.route(...)`: messages are typed from their TypeBox schemas (either
 * line), `ctx.obj` from `objectLoader`'s return type, `ctx.params` from the URL, and `ctx.user` from
 * `ChanxTypes`, non-null when `permissions` list `IsAuthenticated`.
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
  Outgoing extends MessageSchemas = NoSchemas,
  const Key extends string = 'action',
  Events extends MessageSchemas = NoSchemas,
  const Permissions extends readonly Permission<never>[] = []
> (definition: SocketRouteDefinition<Url, Messages, Outgoing, Loader, Key, Events, Permissions>): SocketRouteOptions<MessageOf<Messages, Key>, MessageOf<Outgoing, Key>, Key> {
  if (definition === null || typeof definition !== 'object') throw new InvalidOptionError('defineSocketRoute needs an options object')
  return { ...definition, method: 'GET', websocket: true, handler: chanxSocketHandler } as unknown as SocketRouteOptions<MessageOf<Messages, Key>, MessageOf<Outgoing, Key>, Key>
}

/**
 * Declares a typed HTTP route for `app.route(...)`: `request.params` from the URL, `request.obj` from
 * `objectLoader`'s return type (so each route has its own object type), each permission's object check
 * against that type, and `request.user` non-null when `permissions` list `IsAuthenticated`. A plain
 * `app.get(url, { objectLoader, permissions }, handler)` types them from `ChanxTypes` instead.
 *
 *     app.route(defineRoute({
 *       method: 'GET',
 *       url: '/api/docs/:docId',
 *       objectLoader: (request) => docs.get(request.params.docId),
 *       permissions: [IsAuthenticated, CanReadDoc],            // CanReadDoc: Permission<Doc>
 *       handler: async (request) => request.obj.title         // request.obj: Doc
 *     }))
 */
export function defineRoute<
  const Url extends string,
  Obj = unknown,
  const Permissions extends readonly Permission<never>[] = []
> (definition: RouteDefinition<Url, Obj, Permissions>): RouteOptions {
  if (definition === null || typeof definition !== 'object') throw new InvalidOptionError('defineRoute needs an options object')
  return definition as unknown as RouteOptions
}
