import { InvalidOptionError } from '../../core/errors'
import { MemoryHistory } from './memory-store'
import type { HistoryLimits, HistoryStore } from './model'
import type { ChannelLayer } from '../layer'
import { MemoryLayer } from '../memory-layer'
import { RedisHistory, type RedisHistoryAccess } from './redis-store'

/**
 * The history store for a hub's layer: rings in this process on the in-process layer, Streams on Redis.
 * Any other layer fails registration: positions assigned in one process mean nothing in another.
 */
export function createHistoryStore (layer: ChannelLayer, limits: HistoryLimits): HistoryStore {
  if (layer instanceof MemoryLayer) return new MemoryHistory(limits)
  const access = (layer as { historyAccess?: () => RedisHistoryAccess }).historyAccess
  if (typeof access === 'function') return new RedisHistory(access.call(layer), limits)
  throw new InvalidOptionError(`option history needs the in-process channel layer or redis; the channel layer "${layer.name}" cannot keep it`)
}
