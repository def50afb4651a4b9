import type { ChannelLogger } from './layer'

/** At most this many malformed envelopes are logged per window; the rest are counted in the next line. */
const MALFORMED_LOGS = 10
const MALFORMED_WINDOW = 10_000

/** Dropped envelopes, logged at most MALFORMED_LOGS lines per window: a flood of forgeries cannot flood the log. */
export class MalformedLog {
  private window = 0
  private logged = 0
  private suppressed = 0

  constructor (private readonly logger: ChannelLogger) {}

  report (channel: string, text: string, reason: string): void {
    const now = Date.now()
    if (now - this.window >= MALFORMED_WINDOW) {
      this.window = now
      this.logged = 0
    }
    if (this.logged >= MALFORMED_LOGS) {
      this.suppressed++
      return
    }
    this.logged++
    const suppressed = this.suppressed
    this.suppressed = 0
    this.logger.warn({ channel: channel.slice(0, 300), reason, envelope: text.slice(0, 200), suppressed },
      'fastify-chanx: ignored a malformed channel envelope')
  }
}
