import { logSafely, type ChannelLogger } from './layer'

/** How long failures are counted before one summary line reports them (ms). */
export const FAILURE_WINDOW = 10_000

export type FailureKind = 'broadcast' | 'presence write' | 'presence entry check'

const PLURAL: Readonly<Record<FailureKind, string>> = {
  broadcast: 'broadcasts',
  'presence write': 'presence writes',
  'presence entry check': 'presence entry checks'
}

/**
 * What failed on the channel layer, logged as one summary line per window instead of a line per event: during
 * an outage every broadcast and every presence heartbeat fails, and an operator needs the count, not a flood
 * (docs/observability.md "Logs during a failover"). The layer itself logs one line when it is lost and one
 * when it is back.
 */
export class FailureLog {
  private readonly counts = new Map<FailureKind, number>()
  private lastError: unknown = null
  private timer: NodeJS.Timeout | null = null

  constructor (private readonly logger: ChannelLogger, private readonly window = FAILURE_WINDOW) {}

  /** One failure of `kind`; the window's summary reports it. */
  record (kind: FailureKind, err: unknown): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1)
    this.lastError = err
    if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), this.window)
      this.timer.unref()
    }
  }

  /** Logs what was counted since the last line, if anything (at the window's end, and on close). */
  flush (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    if (this.counts.size === 0) return
    const parts: string[] = []
    const failed: Record<string, number> = {}
    for (const [kind, count] of this.counts) {
      parts.push(`${count} ${count === 1 ? kind : PLURAL[kind]}`)
      failed[kind] = count
    }
    const err = this.lastError
    this.counts.clear()
    this.lastError = null
    const text = parts.length === 1 ? parts[0] : parts.slice(0, -1).join(', ') + ' and ' + parts[parts.length - 1]
    logSafely(this.logger, 'warn', err, { failed }, `fastify-chanx: ${text} failed in the last ${Math.round(this.window / 1000)} s`)
  }
}
