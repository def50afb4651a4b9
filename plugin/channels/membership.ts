import { ChannelLayerClosedError } from './errors'
import type { ChannelLayer, ChannelLogger } from './layer'
import { MemberChannelLists, type ChannelMember } from './member'
import { LayerSubscriptions } from './subscriptions'

/**
 * Who is in which layer channel in this process: channel -> its local members, each member's channels in
 * joining order, and one layer subscription per live channel (refcounted over members).
 */
export class Membership {
  /** layer channel -> local members */
  private readonly channels = new Map<string, Set<ChannelMember>>()
  /** member -> layer channels it is in, in joining order */
  readonly lists = new MemberChannelLists()
  private readonly subscriptions: LayerSubscriptions
  private listener: ((group: string) => void) | null = null
  private emptied: ((channel: string) => void) | null = null
  private closed = false

  constructor (layer: ChannelLayer, logger: ChannelLogger) {
    this.subscriptions = new LayerSubscriptions(layer, logger)
  }

  /** The local members of `channel`, or undefined when it has none. */
  of (channel: string): Set<ChannelMember> | undefined {
    return this.channels.get(channel)
  }

  has (channel: string): boolean {
    return this.channels.has(channel)
  }

  /** Called with the group's name whenever a member of this process joins or leaves a group (presence). */
  onChange (listener: ((group: string) => void) | null): void {
    this.listener = listener
  }

  /** Called with the channel whenever its last local member left (its subscription is being closed). */
  onEmpty (listener: ((channel: string) => void) | null): void {
    this.emptied = listener
  }

  private changed (channel: string): void {
    if (this.listener !== null && channel.startsWith('g:')) this.listener(channel.slice(2))
  }

  /** Adds `member` to `channel`; resolves once the channel's subscription is in place, and undoes the add if it failed. */
  async add (member: ChannelMember, channel: string): Promise<void> {
    if (this.closed) throw new ChannelLayerClosedError()
    this.lists.add(member, channel)
    let set = this.channels.get(channel)
    if (set === undefined) {
      set = new Set()
      this.channels.set(channel, set)
      this.subscriptions.open(channel)
    }
    set.add(member)
    this.changed(channel)
    try {
      await this.subscriptions.ready(channel)
    } catch (err) {
      // Not subscribed: undo, so the member is not half in a group that other processes cannot reach.
      // The undo's unsubscribe is not awaited: during an outage it would double the wait of join().
      if (set.has(member)) void this.remove(member, channel)
      throw err
    }
  }

  /** Removes `member` from `channel`; resolves after any unsubscribe. */
  remove (member: ChannelMember, channel: string): Promise<void> {
    const set = this.channels.get(channel)
    this.lists.delete(member, channel)
    if (set === undefined || !set.delete(member)) return Promise.resolve()
    this.changed(channel)
    if (set.size > 0) return Promise.resolve()
    this.channels.delete(channel)
    if (this.emptied !== null) this.emptied(channel)
    return this.subscriptions.close(channel)
  }

  /**
   * The members of `channel` that hear an envelope published to every group of `list`: one envelope
   * arrives per group, so a member of several hears it on the first of them only.
   */
  firstHearers (channel: string, list: readonly string[]): ChannelMember[] | null {
    const set = this.channels.get(channel)
    if (set === undefined) return []
    const index = list.indexOf(channel.slice(2))
    if (index < 0) return null
    const earlier: Set<ChannelMember>[] = []
    for (let g = 0; g < index; g++) {
      const other = this.channels.get('g:' + list[g])
      if (other !== undefined) earlier.push(other)
    }
    const out: ChannelMember[] = []
    for (const member of set) {
      if (earlier.length > 0 && earlier.some((s) => s.has(member))) continue
      out.push(member)
    }
    return out
  }

  /** Forgets every member and channel (the hub is closing); a later add rejects. */
  close (): void {
    this.closed = true
    for (const set of this.channels.values()) for (const member of set) this.lists.forget(member)
    this.channels.clear()
    this.lists.clear()
    this.subscriptions.clear()
  }
}
