/**
 * One socket's waiting frames (dispatch.ts): a ring, so that a client that always keeps a few frames queued
 * behind a slow handler reuses the same slots instead of growing an array by one slot per message (the
 * array-with-a-head it replaces only compacted when the queue emptied, which such a client never lets
 * happen). The ring grows by doubling up to the largest backlog the socket ever had (bounded by
 * `maxQueuedFrames` and `maxQueuedBytes`) and is dropped when it empties after a burst, so an idle
 * socket holds no storage. It also counts the bytes it holds, for `maxQueuedBytes`.
 */
/** A frame as ws hands it over. */
export type RawFrame = Buffer | ArrayBuffer | Buffer[]

/** Capacity kept when the ring empties; a larger one (after a burst) is let go. */
const KEPT_CAPACITY = 16

export class FrameQueue {
  private frames: (RawFrame | undefined)[] | null = null
  private binary: boolean[] | null = null
  private head = 0
  /** Frames waiting. */
  length = 0
  /** Their bytes. */
  bytes = 0
  private sizes: number[] | null = null

  /** Slots of backing storage (for tests and docs: it stays near the largest backlog, never the frame count). */
  get capacity (): number {
    return this.frames === null ? 0 : this.frames.length
  }

  push (frame: RawFrame, isBinary: boolean, size: number): void {
    let frames = this.frames
    if (frames === null || this.length === frames.length) frames = this.grow()
    const mask = frames.length - 1
    const at = (this.head + this.length) & mask
    frames[at] = frame
    ;(this.binary as boolean[])[at] = isBinary
    ;(this.sizes as number[])[at] = size
    this.length++
    this.bytes += size
  }

  /** Whether the next frame is binary; only when `length > 0`. */
  get nextIsBinary (): boolean {
    return (this.binary as boolean[])[this.head] as boolean
  }

  /** Takes the next frame; only when `length > 0`. */
  shift (): RawFrame {
    const frames = this.frames as (RawFrame | undefined)[]
    const at = this.head
    const frame = frames[at] as RawFrame
    frames[at] = undefined
    this.bytes -= (this.sizes as number[])[at] as number
    this.head = (at + 1) & (frames.length - 1)
    if (--this.length === 0) this.reset()
    return frame
  }

  /** Empties the queue (the socket closes); returns how many frames were dropped. */
  clear (): number {
    const dropped = this.length
    if (this.frames !== null) this.frames.fill(undefined)
    this.length = 0
    this.reset()
    return dropped
  }

  private reset (): void {
    this.head = 0
    this.bytes = 0
    if (this.frames !== null && this.frames.length > KEPT_CAPACITY) {
      this.frames = null
      this.binary = null
      this.sizes = null
    }
  }

  /** Doubles the ring (at least 4 slots), laying the waiting frames out from slot 0. */
  private grow (): (RawFrame | undefined)[] {
    const old = this.frames
    const oldBinary = this.binary as boolean[]
    const oldSizes = this.sizes as number[]
    const capacity = old === null ? 4 : old.length * 2
    const frames = new Array<RawFrame | undefined>(capacity).fill(undefined)
    const binary = new Array<boolean>(capacity).fill(false)
    const sizes = new Array<number>(capacity).fill(0)
    if (old !== null) {
      const mask = old.length - 1
      for (let i = 0; i < this.length; i++) {
        const from = (this.head + i) & mask
        frames[i] = old[from]
        binary[i] = oldBinary[from] as boolean
        sizes[i] = oldSizes[from] as number
      }
    }
    this.frames = frames
    this.binary = binary
    this.sizes = sizes
    this.head = 0
    return frames
  }
}
