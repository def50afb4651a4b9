import type { ChannelLayer, ChannelListener } from './layer'
import { ChannelLayerClosedError } from './errors'

/**
 * In-process layers that can reach each other. Every `MemoryLayer` made without a broker gets its own,
 * so the default carries nothing beyond its hub; tests pass one broker to several layers to stand in for
 * several processes.
 */
export class MemoryBroker {
  /** channel -> layers subscribed to it */
  readonly subscribers = new Map<string, Set<MemoryLayer>>()
}

/** The default channel layer: zero set-up, one process. */
export class MemoryLayer implements ChannelLayer {
  readonly name = 'memory'
  private readonly broker: MemoryBroker
  private readonly channels = new Set<string>()
  private listener: ChannelListener | null = null
  private closed = false

  constructor (broker: MemoryBroker = new MemoryBroker()) {
    this.broker = broker
  }

  setListener (listener: ChannelListener): void {
    this.listener = listener
  }

  async subscribe (channel: string): Promise<void> {
    if (this.closed) throw new ChannelLayerClosedError()
    if (this.channels.has(channel)) return
    this.channels.add(channel)
    let set = this.broker.subscribers.get(channel)
    if (set === undefined) {
      set = new Set()
      this.broker.subscribers.set(channel, set)
    }
    set.add(this)
  }

  async unsubscribe (channel: string): Promise<void> {
    if (!this.channels.delete(channel)) return
    const set = this.broker.subscribers.get(channel)
    if (set === undefined) return
    set.delete(this)
    if (set.size === 0) this.broker.subscribers.delete(channel)
  }

  async publish (channel: string, envelope: string): Promise<number> {
    if (this.closed) throw new ChannelLayerClosedError()
    const set = this.broker.subscribers.get(channel)
    if (set === undefined) return 0
    // Delivered on a later tick, as a network layer would: a receiver never runs inside the publisher's
    // call stack, so a handler that broadcasts from a broadcast cannot recurse.
    for (const layer of set) queueMicrotask(() => layer.deliver(channel, envelope))
    return set.size
  }

  private deliver (channel: string, envelope: string): void {
    if (this.listener !== null && this.channels.has(channel)) this.listener(channel, envelope)
  }

  async close (): Promise<void> {
    if (this.closed) return
    for (const channel of [...this.channels]) await this.unsubscribe(channel)
    this.closed = true
    this.listener = null
  }
}
