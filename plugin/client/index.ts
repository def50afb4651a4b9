/**
 * `fastify-chanx/client`: a typed client for fastify-chanx socket routes, for browsers and Node ≥ 20.
 *
 *     import type { chatRoute } from './server/routes'
 *     const client = createClient<typeof chatRoute>('wss://example.com/ws/rooms/lobby', { getToken })
 *     await client.connect()
 *     client.send('chat', { text: 'hi' })
 */
import { ChanxClient } from './client'
import type { ClientOptions, ClientRoute, KeyOf } from './types'

export { ChanxClient, type ClientEvents } from './client'
export { ChanxClientError, ChanxRefusal, type ClientErrorCode } from './errors'
export { backoffDelay, defaultPolicy } from './policy'
export type * from './types'

/** A client of the route whose `defineSocketRoute` result is `Route` (pass `typeof route`, imported as a type). */
export function createClient<Route extends ClientRoute = ClientRoute> (url: string, options?: ClientOptions & { actionKey?: KeyOf<Route> }): ChanxClient<Route> {
  return new ChanxClient<Route>(url, options)
}
