/**
 * The handshake timeout of one route's hook, with one timer for all of its pending handshakes instead of
 * a Timeout (and a Promise.race) per handshake. They all wait the same time, so the order they started in
 * is the order of their deadlines: an insertion-ordered Set, whose head is the next to expire.
 *
 * When the last pending handshake settles, the timer is unref'd, not cleared: handshakes that come one at a
 * time (the common case) would otherwise create and clear a Timeout each. An unref'd timer holds no closing
 * app, and it fires at most once more, finds nothing to time and is dropped.
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
        if (this.waiting.size === 0) this.timer?.unref()
      })
      // Ref'd while a handshake is pending: it is work in progress, and the timer lives at most `ms`.
      if (this.timer === null) this.timer = setTimeout(this.expire, this.ms)
      else if (this.waiting.size === 1) this.timer.ref()
    })
  }

  /** Whether the timer keeps the process alive (a handshake is pending). */
  get holding (): boolean {
    return this.timer !== null && this.timer.hasRef()
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
