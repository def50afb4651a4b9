import type { EnvelopeCodec } from './envelope'
import { ChannelLayerClosedError, ChannelLayerTimeoutError } from './errors'
import type { ChannelLayer } from './layer'

interface PendingCount {
  total: number
  answers: number
  expected: number
  resolve (n: number): void
  reject (err: Error): void
  timer: NodeJS.Timeout
}

/**
 * Counting a group's members across every process (`hub.size`). The asker publishes a query on the group's
 * channel; PUBLISH says how many processes received it, and each answers with its local count on the
 * asker's reply channel `r:<origin>`.
 */
export class GroupSizeQueries {
  private readonly counts = new Map<number, PendingCount>()
  private replyChannel: Promise<void> | null = null
  private nextQuery = 0

  constructor (
    private readonly layer: ChannelLayer,
    private readonly codec: EnvelopeCodec,
    private readonly timeout: number
  ) {}

  /** Rejects with FST_CHANX_CHANNEL_LAYER_TIMEOUT if the processes do not all answer within the timeout. */
  async size (group: string, channel: string): Promise<number> {
    if (this.replyChannel === null) {
      const subscribing = this.layer.subscribe('r:' + this.codec.origin)
      this.replyChannel = subscribing
      // A subscription that failed (Redis down) is retried by the next size(), never cached.
      subscribing.catch(() => { if (this.replyChannel === subscribing) this.replyChannel = null })
    }
    await this.replyChannel
    const id = ++this.nextQuery
    const result = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.counts.delete(id)
        reject(new ChannelLayerTimeoutError(`counting the members of "${group}"`, this.timeout))
      }, this.timeout)
      timer.unref()
      this.counts.set(id, { total: 0, answers: 0, expected: -1, resolve, reject, timer })
    })
    try {
      const receivers = await this.layer.publish(channel, this.codec.seal(channel, this.codec.sizeQuery(id)))
      const pending = this.counts.get(id)
      if (pending !== undefined) {
        pending.expected = receivers
        this.settle(id, pending)
      }
    } catch (err) {
      const pending = this.counts.get(id)
      if (pending !== undefined) {
        clearTimeout(pending.timer)
        this.counts.delete(id)
        pending.reject(err as Error)
      }
    }
    return result
  }

  /** One process's answer to query `id`: `count` members. */
  answered (id: number, count: number): void {
    const pending = this.counts.get(id)
    if (pending === undefined) return
    pending.total += count
    pending.answers++
    this.settle(id, pending)
  }

  /** Every pending count fails. */
  close (): void {
    for (const [id, pending] of this.counts) {
      clearTimeout(pending.timer)
      this.counts.delete(id)
      pending.reject(new ChannelLayerClosedError())
    }
  }

  private settle (id: number, pending: PendingCount): void {
    if (pending.expected < 0 || pending.answers < pending.expected) return
    clearTimeout(pending.timer)
    this.counts.delete(id)
    pending.resolve(pending.total)
  }
}
