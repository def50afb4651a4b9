import type { AppFleet } from './processes'

/** One numbered message of one stream, as its publisher saw it. */
export interface Published {
  /** The fault class running when it was published (the report's row). */
  phase: string
  start: number
  end: number
  /**
   * `ok`: the publish promise resolved; `rejected`: it rejected (with `code`); `partial`: it rejected, and
   * its `err.groups` said the groups in `published` took it; `unknown`: the answer was lost (the process died).
   */
  outcome: 'ok' | 'rejected' | 'partial' | 'unknown' | 'pending'
  code?: string
  published?: string[]
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Publishes numbered messages (1, 2, 3… per stream, in the payload: `{ s, n }`) to every stream at `rate`
 * messages a second in all, through `POST /publish` of a random live app process. One stream's publishes
 * are sequential (the next batch starts once the last is answered), so their numbers and offsets agree.
 * A request that no process took (refused, or 503 while closing) is retried on another with the same
 * numbers; one whose answer was lost is recorded as `unknown`.
 */
export class Publisher {
  readonly records = new Map<string, Published[]>()
  phase = 'start'
  private running = false
  private loops: Array<Promise<void>> = []

  constructor (private readonly fleet: AppFleet, readonly streams: string[], private readonly rate: number,
    private readonly random: () => number) {
    for (const s of streams) this.records.set(s, [])
  }

  get count (): number {
    let n = 0
    for (const list of this.records.values()) n += list.length
    return n
  }

  start (): void {
    this.running = true
    const perStream = this.rate / this.streams.length
    const batch = Math.max(1, Math.ceil(perStream / 20))
    const interval = 1000 * batch / perStream
    this.loops = this.streams.map((s) => this.loop(s, batch, interval))
  }

  async stop (): Promise<void> {
    this.running = false
    await Promise.all(this.loops)
  }

  private async loop (stream: string, batch: number, interval: number): Promise<void> {
    const list = this.records.get(stream)!
    while (this.running) {
      const started = Date.now()
      const ns: number[] = []
      for (let i = 0; i < batch; i++) {
        ns.push(list.length + 1)
        list.push({ phase: this.phase, start: started, end: 0, outcome: 'pending' })
      }
      const outcomes = await this.send(stream, ns)
      const end = Date.now()
      for (let i = 0; i < ns.length; i++) {
        const record = list[ns[i]! - 1]!
        record.end = end
        const outcome = outcomes?.[i]
        if (outcome === undefined) record.outcome = 'unknown'
        else if (outcome === 'ok') record.outcome = 'ok'
        else if (outcome.startsWith('partial:')) {
          const [, code, groups] = outcome.split(':')
          record.outcome = 'partial'
          record.code = code
          record.published = groups!.split(',')
        } else { record.outcome = 'rejected'; record.code = outcome }
      }
      await delay(Math.max(0, interval - (Date.now() - started)))
    }
  }

  /** The outcomes of publishing `ns`, or null when they are unknown. */
  private async send (stream: string, ns: number[]): Promise<string[] | null> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const live = this.fleet.live()
      if (live.length === 0) { await delay(100); continue }
      const port = this.fleet.port(live[Math.floor(this.random() * live.length)]!)
      let response: Response
      try {
        response = await fetch(`http://127.0.0.1:${port}/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ s: stream, ns }),
          signal: AbortSignal.timeout(20_000)
        })
      } catch (err) {
        // Refused: no process took it, nothing ran. Anything else (reset, timeout): it may have run.
        if ((err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED') { await delay(20); continue }
        return null
      }
      if (response.status === 503) { await response.body?.cancel(); await delay(20); continue }
      if (response.status !== 200) { await response.body?.cancel(); return null }
      return ((await response.json()) as { outcomes: string[] }).outcomes
    }
    return null
  }
}
