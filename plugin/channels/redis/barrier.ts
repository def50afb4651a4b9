import { randomBytes } from 'node:crypto'

/**
 * The markers of the recovery barrier (RedisLayer.barrier): texts one layer publishes on channels it is
 * subscribed to and waits to receive back, each proving that everything published on its channel before it
 * has been received. A marker reads `!chanx-barrier:<layer id>:<barrier number>:<nonce>:<i>`: neither an
 * envelope (`{`) nor a positioned publication (`~`) begins with `!`, so one character code tells a marker
 * apart on the hot path. The layer id and the per-barrier nonce are random, so neither another process nor a
 * writer on Redis can complete a wait early; every layer swallows markers, its own and others', so none
 * reaches a hub.
 */

const MARKER = '!chanx-barrier:'
const BANG = 33

/** One barrier's wait: how many of its markers are still to come back, and what to call when none is. */
interface BarrierWait { left: number, done: () => void }

/** Whether a received publication is a barrier marker (anyone's). */
export function isMarker (message: string): boolean {
  return message.charCodeAt(0) === BANG && message.startsWith(MARKER)
}

export class BarrierMarkers {
  /** How this layer's markers begin. */
  private readonly prefix = MARKER + randomBytes(8).toString('hex') + ':'
  private count = 0
  /** The markers waited for, by their text: the channel each must come back on, and its barrier. */
  private readonly waiting = new Map<string, { channel: string, wait: BarrierWait }>()

  /**
   * New markers, one per channel, and a promise that resolves once each has come back on its channel.
   * Call `forget(texts)` once done (resolved or given up) so that a late echo finds nothing.
   */
  make (channels: readonly string[]): { texts: string[], echoed: Promise<void> } {
    const id = this.prefix + (++this.count) + ':' + randomBytes(8).toString('hex') + ':'
    const texts: string[] = []
    const echoed = new Promise<void>((resolve) => {
      const wait: BarrierWait = { left: channels.length, done: resolve }
      for (let i = 0; i < channels.length; i++) {
        texts.push(id + i)
        this.waiting.set(id + i, { channel: channels[i]!, wait })
      }
    })
    return { texts, echoed }
  }

  /** A marker received on `channel`: ours counts its barrier down; anyone else's is dropped. */
  receive (channel: string, marker: string): void {
    const entry = this.waiting.get(marker)
    if (entry === undefined || entry.channel !== channel) return
    this.waiting.delete(marker)
    if (--entry.wait.left === 0) entry.wait.done()
  }

  forget (texts: readonly string[]): void {
    for (const text of texts) this.waiting.delete(text)
  }

  clear (): void {
    this.waiting.clear()
  }
}
