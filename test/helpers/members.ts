import type { ChannelMember } from '../../plugin/channels/hub'

/** A member that records what reaches it, for hub tests. */
export class FakeMember implements ChannelMember {
  static next = 0
  readonly id: string
  readonly userKey: string | null
  readonly received: string[] = []
  readonly events: Array<{ name: string, payload: unknown }> = []
  closed: { code: number, reason: string } | null = null

  constructor (userKey: string | null, id?: string) {
    this.userKey = userKey
    this.id = id ?? `m${++FakeMember.next}`
  }

  send (data: string): void {
    this.received.push(data)
  }

  close (code: number, reason: string): void {
    this.closed = { code, reason }
  }

  onEvent (name: string, payload: unknown): void {
    this.events.push({ name, payload })
  }

  /** What reached it, parsed. */
  get messages (): Array<Record<string, unknown>> {
    return this.received.map((r) => JSON.parse(r))
  }
}

/** Let queued microtasks and immediate callbacks run. */
export function settle (): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
