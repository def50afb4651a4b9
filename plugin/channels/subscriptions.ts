import type { ChannelLayer, ChannelLogger } from './layer'

/**
 * The hub's layer subscriptions: one per live channel per process (the hub refcounts members), and the
 * subscribes and unsubscribes of one channel reach the layer in the order they were asked for.
 */
export class LayerSubscriptions {
  /** layer channel -> the subscription its members await */
  private readonly subscriptions = new Map<string, Promise<void>>()
  /** layer channel -> tail of its subscribe/unsubscribe chain */
  private readonly chains = new Map<string, Promise<void>>()

  constructor (private readonly layer: ChannelLayer, private readonly logger: ChannelLogger) {}

  /** The channel's first member: subscribe. */
  open (channel: string): void {
    this.subscriptions.set(channel, this.enqueue(channel, () => this.layer.subscribe(channel)))
  }

  /** Resolves once the channel's subscription is in place; rejects if it failed. */
  ready (channel: string): Promise<void> | undefined {
    return this.subscriptions.get(channel)
  }

  /** The channel's last member left: unsubscribe (a failure is logged). */
  close (channel: string): Promise<void> {
    this.subscriptions.delete(channel)
    return this.enqueue(channel, () => this.layer.unsubscribe(channel)).catch((err: Error) => {
      this.logger.warn({ err, channel }, 'fastify-chanx: could not unsubscribe from a channel')
    })
  }

  clear (): void {
    this.subscriptions.clear()
  }

  private enqueue (channel: string, op: () => Promise<void>): Promise<void> {
    const previous = this.chains.get(channel) ?? Promise.resolve()
    const next = previous.then(op)
    const tail = next.catch(() => {})
    this.chains.set(channel, tail)
    tail.then(() => { if (this.chains.get(channel) === tail) this.chains.delete(channel) })
    return next
  }
}
