import type { BackoffOptions, CloseInfo, Decision } from './types'

/**
 * The default reconnection policy: docs/protocol.md's close-code table as code. A first handshake that is
 * refused is reported to `connect()`, not retried; a connection that was up reconnects where the table says so.
 */
export function defaultPolicy (close: CloseInfo, backoff: BackoffOptions = {}): Decision {
  const code = close.code
  if (close.reason === 'Logged out') return STOP
  if (code === 4401) return close.canRefresh && !close.afterRefresh ? REFRESH : STOP
  if (close.refusal !== null && !close.wasOpen) return STOP
  if (close.attempt >= (backoff.maxAttempts ?? Infinity)) return STOP
  if (code === 1000 || code === 4403 || code === 4404 || code === 4408) return STOP
  if (code >= 4000 && code < 5000 && code !== 4429 && code < 4500) return STOP
  return { action: 'reconnect', delay: backoffDelay(close.attempt, backoff) }
}

const STOP: Decision = { action: 'stop' }
const REFRESH: Decision = { action: 'refresh' }

/** Exponential backoff with full jitter: a uniform delay below `min(maxDelay, initialDelay * factor^attempt)`. */
export function backoffDelay (attempt: number, backoff: BackoffOptions = {}): number {
  const cap = Math.min(backoff.maxDelay ?? 30000, (backoff.initialDelay ?? 500) * Math.pow(backoff.factor ?? 2, attempt))
  return Math.floor(Math.random() * cap)
}
