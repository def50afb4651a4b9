/**
 * Abuse limits kept per connection or per process: a token bucket for message rates, counters for
 * concurrent connections, and a timer that survives delays longer than `setTimeout` accepts.
 */

/** Refills `rate` tokens a second up to `burst`; one token per message. */
export class TokenBucket {
  private tokens: number
  private updatedAt: number

  constructor (private readonly rate: number, private readonly burst: number, now = Date.now()) {
    this.tokens = burst
    this.updatedAt = now
  }

  take (now = Date.now()): boolean {
    const elapsed = now - this.updatedAt
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + elapsed * this.rate / 1000)
      this.updatedAt = now
    }
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}

/** Counts open connections per key (a user, an IP); a key whose count drops to zero is forgotten. */
export class ConnectionCounter {
  private readonly counts = new Map<string, number>()

  /** Takes a slot for `key` unless `limit` are taken already. */
  acquire (key: string, limit: number): boolean {
    const count = this.counts.get(key) ?? 0
    if (count >= limit) return false
    this.counts.set(key, count + 1)
    return true
  }

  release (key: string): void {
    const count = this.counts.get(key)
    if (count === undefined) return
    if (count <= 1) this.counts.delete(key)
    else this.counts.set(key, count - 1)
  }

  count (key: string): number {
    return this.counts.get(key) ?? 0
  }

  get size (): number {
    return this.counts.size
  }
}

/** `setTimeout` fires at once for delays over 2^31 - 1 ms (~24.8 days): longer delays are re-armed in steps. */
export const MAX_TIMER_DELAY = 2 ** 31 - 1

export interface LongTimer {
  cancel(): void
}

export function setLongTimeout (callback: () => void, delay: number): LongTimer {
  const deadline = Date.now() + Math.max(0, delay)
  let timer: NodeJS.Timeout
  const arm = (): void => {
    const remaining = deadline - Date.now()
    if (remaining > MAX_TIMER_DELAY) {
      timer = setTimeout(arm, MAX_TIMER_DELAY)
    } else {
      timer = setTimeout(callback, Math.max(0, remaining))
    }
    timer.unref()
  }
  arm()
  return { cancel: () => clearTimeout(timer) }
}

/** Frames are capped at 64 KiB unless configured (OWASP), per route and in ws itself. */
export const DEFAULT_MAX_PAYLOAD = 64 * 1024
