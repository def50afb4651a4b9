import { frameString } from './ws-internals'

/**
 * One outgoing text, shared by every socket it goes to: a broadcast copy, `group_complete`. The text is
 * encoded and framed once, on first use, and the same buffer is written to every socket that can take it
 * as it is (core/ws-internals.ts `writeFramed`); the others are sent `text` the usual way.
 */
export class SharedFrame {
  private bytes: Buffer | null = null
  private pair: SharedFrame | null = null

  /** `next`: a frame that always follows this one (a copy's `group_complete`), in the same write. */
  constructor (readonly text: string, readonly next: SharedFrame | null = null) {}

  /** The whole WebSocket frame: header and UTF-8 payload (then `next`'s frame, if any). */
  get framed (): Buffer {
    if (this.bytes === null) {
      const own = frameString(this.text)
      this.bytes = this.next === null ? own : Buffer.concat([own, this.next.framed], own.length + this.next.framed.length)
    }
    return this.bytes
  }

  /** This frame followed by `next`, as one frame pair, made once per `next` and kept. */
  followedBy (next: SharedFrame): SharedFrame {
    if (this.pair === null || this.pair.next !== next) this.pair = new SharedFrame(this.text, next)
    return this.pair
  }
}
