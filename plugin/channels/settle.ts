import type { FastifyBaseLogger } from 'fastify'
import { InvalidChannelArgumentError } from './errors'
import { InvalidOptionError } from '../core/errors'
import type { FailureLog } from './failure-log'
import { logSafely } from './layer'

function isArgumentError (err: unknown): boolean {
  try {
    return err instanceof InvalidChannelArgumentError || err instanceof InvalidOptionError
  } catch {
    return false // a Proxy whose getPrototypeOf throws is no error of ours
  }
}

async function publishing (send: () => Promise<void>, failures: FailureLog): Promise<void> {
  try {
    await send()
  } catch (err) {
    if (isArgumentError(err)) throw err
    failures.record('broadcast', err)
  }
}

/**
 * Runs a hub send. A channel layer that fails to publish (Redis down or hung) is counted in `failures`, which
 * logs a summary per window, and resolves: delivery is at-most-once. A wrong argument (a group name the
 * client chose, '' or too long) rejects for a caller that awaits, and is logged by {@link guarded}, so a send
 * nobody awaits cannot end the process.
 */
export function settle (send: () => Promise<void>, failures: FailureLog, log: FastifyBaseLogger): Promise<void> {
  return guarded(publishing(send, failures), log)
}

/** One handler per logger, made once: guarded() runs per broadcast and per join. */
const handlers = new WeakMap<FastifyBaseLogger, (err: unknown) => void>()

/**
 * `promise` itself, with a handler attached that logs a rejection at warn: an unawaited call whose
 * arguments came from a client (`ctx.join(name)`) never becomes an unhandled rejection, which ends the
 * process, while a caller that awaits still gets the rejection. The rejection is logged either way.
 */
export function guarded<T> (promise: Promise<T>, log: FastifyBaseLogger): Promise<T> {
  let handler = handlers.get(log)
  if (handler === undefined) {
    handler = (err: unknown) => logSafely(log, 'warn', err, {}, 'fastify-chanx: a channel call was refused')
    handlers.set(log, handler)
  }
  promise.catch(handler)
  return promise
}
