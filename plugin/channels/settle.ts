import type { FastifyBaseLogger } from 'fastify'
import { InvalidChannelArgumentError } from './errors'
import { InvalidOptionError } from '../core/errors'

/**
 * Runs a hub send. A wrong argument rejects (a bug to see); a channel layer that fails to publish (Redis
 * down) is logged and resolves: delivery is at-most-once, and a broadcast nobody awaits must not become
 * an unhandled rejection that ends the process.
 */
export async function settle (send: () => Promise<void>, log: FastifyBaseLogger): Promise<void> {
  try {
    await send()
  } catch (err) {
    if (err instanceof InvalidChannelArgumentError || err instanceof InvalidOptionError) throw err
    log.error({ err }, 'fastify-chanx: a message could not be published to the channel layer')
  }
}
