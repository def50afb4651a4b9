import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import chanx, { type FastifyChanxOptions } from '../../plugin'

/** Registers fastify-chanx with `options` (after @fastify/websocket); resolves with the error `ready()` failed with. */
export async function pluginRegistrationError (options: unknown): Promise<Error & { code?: string }> {
  const app = Fastify()
  await app.register(websocket)
  app.register(chanx, options as FastifyChanxOptions)
  try {
    await app.ready()
  } catch (err) {
    await app.close()
    return err as Error & { code?: string }
  }
  await app.close()
  throw new Error('registration succeeded')
}
