import { metaTtlOf, newEpoch, type HistoryEntry, type HistoryLimits, type LocalHistoryStore, type Position, type ReadResult } from './model'

/** One stream's kept entries: a ring of at most `size`, trimmed by age as it is used. */
class Ring {
  readonly epoch = newEpoch()
  offset = 0
  entries: HistoryEntry[] = []
  start = 0
  lastUse = Date.now()

  trim (now: number, limits: HistoryLimits): void {
    const entries = this.entries
    let start = this.start
    if (entries.length - start > limits.size) start = entries.length - limits.size
    const oldest = now - limits.maxAge
    while (start < entries.length && entries[start]!.time < oldest) start++
    if (start === entries.length) {
      this.entries = []
      this.start = 0
    } else if (start > limits.size) {
      this.entries = entries.slice(start)
      this.start = 0
    } else {
      this.start = start
    }
  }
}

/**
 * History in this process: a ring per stream. A stream left with no entry and unused for `metaTtl` is
 * dropped, and made again under a new epoch: a client resuming it then hears `epoch_changed`. Before that,
 * an emptied ring keeps its epoch and offset, so a client that missed nothing resumes `recovered: true`.
 */
export class MemoryHistory implements LocalHistoryStore {
  readonly publishes = false
  private readonly rings = new Map<string, Ring>()
  private readonly timer: NodeJS.Timeout
  private last = 0
  private readonly metaTtl: number

  constructor (readonly limits: HistoryLimits) {
    this.metaTtl = metaTtlOf(limits)
    this.timer = setInterval(() => this.sweep(Date.now()), Math.min(limits.maxAge, 60_000))
    this.timer.unref()
  }

  private ring (channel: string): Ring {
    let ring = this.rings.get(channel)
    if (ring === undefined) {
      ring = new Ring()
      this.rings.set(channel, ring)
    }
    return ring
  }

  next (channel: string): Position {
    const ring = this.ring(channel)
    return { offset: ++ring.offset, epoch: ring.epoch }
  }

  clock (): number {
    const now = Date.now()
    this.last = now > this.last ? now : this.last + 0.001
    return this.last
  }

  keep (channel: string, entry: HistoryEntry): void {
    const ring = this.ring(channel)
    ring.entries.push(entry)
    ring.lastUse = entry.time
    if (ring.entries.length - ring.start > this.limits.size) ring.trim(entry.time, this.limits)
  }

  async position (channel: string): Promise<Position> {
    const ring = this.ring(channel)
    ring.lastUse = Date.now()
    return { offset: ring.offset, epoch: ring.epoch }
  }

  async read (channel: string, since: Position): Promise<ReadResult> {
    const ring = this.ring(channel)
    const now = Date.now()
    ring.lastUse = now
    ring.trim(now, this.limits)
    const position = { offset: ring.offset, epoch: ring.epoch }
    if (since.epoch !== ring.epoch || since.offset > ring.offset) return { position, entries: null, lost: 'epoch_changed' }
    const missed = ring.offset - since.offset
    const kept = ring.entries.length - ring.start
    if (missed > kept) return { position, entries: null, lost: 'window_exceeded' }
    return { position, entries: ring.entries.slice(ring.entries.length - missed), lost: null }
  }

  async barrier (): Promise<void> {}

  private sweep (now: number): void {
    for (const [channel, ring] of this.rings) {
      ring.trim(now, this.limits)
      if (ring.entries.length === 0 && now - ring.lastUse >= this.metaTtl) this.rings.delete(channel)
    }
  }

  close (): void {
    clearInterval(this.timer)
    this.rings.clear()
  }
}
