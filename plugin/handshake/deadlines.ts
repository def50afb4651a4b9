/**
 * The handshake timeout of one route's hook, with one timer for all of its pending handshakes instead of
 * a Timeout (and a Promise.race) per handshake. They all wait the same time, so the order they started in
 * is the order of their deadlines: an insertion-ordered Set, whose head is the next to expire.
 */
export const TIMED_OUT: unique symbol = Symbol('fastify-chanx.timed-out')

interface Waiter<T> {
  readonly deadline: number
  resolve (value: T | typeof TIMED_OUT): void
}

export class HandshakeDeadlines<T> {
  private readonly waiting = new Set<Waiter<T>>()
  private timer: NodeJS.Timeout | null = null

  constructor (private readonly ms: number) {}

  /** `pipeline`'s value, or TIMED_OUT once `ms` pass first. `pipeline` must never reject. */
  race (pipeline: Promise<T>): Promise<T | typeof TIMED_OUT> {
    return new Promise((resolve) => {
      const waiter: Waiter<T> = { deadline: Date.now() + this.ms, resolve }
      this.waiting.add(waiter)
      pipeline.then((value) => {
        if (!this.waiting.delete(waiter)) return
        resolve(value)
        // Nothing left to time: no timer keeps the process (or a closing app) waiting.
        if (this.waiting.size === 0 && this.timer !== null) {
          clearTimeout(this.timer)
          this.timer = null
        }
      })
      // Not unref'd: a pending handshake is work in progress, and the timer lives at most `ms`.
      this.timer ??= setTimeout(this.expire, this.ms)
    })
  }

  private readonly expire = (): void => {
    this.timer = null
    const now = Date.now()
    for (const waiter of this.waiting) {
      if (waiter.deadline > now) {
        this.timer = setTimeout(this.expire, waiter.deadline - now)
        return
      }
      this.waiting.delete(waiter)
      waiter.resolve(TIMED_OUT)
    }
  }
}
