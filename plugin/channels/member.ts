import type { SharedFrame } from '../core/frame'

/** One connection as the hub sees it. */
export interface ChannelMember {
  /** Unique per connection (per process is enough: a connection lives in one process). */
  readonly id: string
  /** Stable identity of the user, compared for `is_mine` and used by sendToUser; null when anonymous. */
  readonly userKey: string | null
  /** Send one text frame. Must not block; a throw is logged and the other members still get theirs. */
  send (data: string): void
  /**
   * Send one broadcast copy (default: `send`); a socket member follows it with `group_complete` where asked.
   * `frame` carries the same text, framed once for every member of the broadcast that can write it as it is.
   */
  sendCopy? (data: string, frame: SharedFrame): void
  /** Close the connection (disconnectUser). */
  close (code: number, reason: string): void
  /** Receive a channel event (sendEvent). */
  onEvent? (name: string, payload: unknown): void
  /** With history: the connection's recovery token, its identity across reconnections (plugin/connection/replay.ts). */
  readonly recoveryToken?: string | null
}

export interface BroadcastOptions {
  /** The connection that sends: it decides `is_mine` and `is_current`, and excludeSelf drops it. */
  sender?: ChannelMember | null
  /** Do not deliver to the sending connection (default true, as Chanx). Other sockets of its user still get it. */
  excludeSelf?: boolean
}

/** A member's identity across reconnections: its recovery token, else its hub's origin and its id. */
export function memberIdentity (member: ChannelMember, origin: string): string {
  return member.recoveryToken ?? origin + ':' + member.id
}

/**
 * A member's channels in joining order: one name alone (most sockets are in their user's channel only),
 * a list once there are several or none. An array per idle socket would cost two more objects.
 */
type MemberChannels = string | string[]

/**
 * Stands for the member's own user channel ('u:' + its userKey) in its MemberChannels: one shared string
 * instead of one per socket of the user. No channel is named so (a userKey is never empty).
 */
const OWN_USER_CHANNEL = 'u:'

/** How `channel` is kept in the member's MemberChannels: its own user channel as OWN_USER_CHANNEL. */
function storedName (member: ChannelMember, channel: string): string {
  const key = member.userKey
  return key !== null && channel.length === key.length + 2 && channel.startsWith(OWN_USER_CHANNEL) && channel.endsWith(key)
    ? OWN_USER_CHANNEL
    : channel
}

/**
 * The layer channels each member is in, in joining order, kept on the member itself under this list's own
 * symbol (no Map entry and Set per connection); a member that cannot take a property (frozen) is kept in
 * a Map instead.
 */
export class MemberChannelLists {
  private readonly key: symbol = Symbol('fastify-chanx.hub-channels')
  private readonly sealed = new Map<ChannelMember, MemberChannels>()

  /** Whether the member was ever attached (and not since forgotten). */
  has (member: ChannelMember): boolean {
    return this.get(member) !== undefined
  }

  /** Its channels' names, in joining order. */
  list (member: ChannelMember): string[] {
    const mine = this.get(member)
    if (mine === undefined) return []
    const stored = typeof mine === 'string' ? [mine] : mine
    const out: string[] = []
    for (const name of stored) out.push(name === OWN_USER_CHANNEL ? OWN_USER_CHANNEL + member.userKey! : name)
    return out
  }

  /** Marks the member attached with no channel. */
  attach (member: ChannelMember): void {
    if (this.get(member) === undefined) this.set(member, [])
  }

  add (member: ChannelMember, channel: string): void {
    const mine = this.get(member)
    const stored = storedName(member, channel)
    if (mine === undefined) this.set(member, stored)
    else if (typeof mine === 'string') {
      if (mine !== stored) this.set(member, [mine, stored])
    } else if (!mine.includes(stored)) mine.push(stored)
  }

  delete (member: ChannelMember, channel: string): void {
    const mine = this.get(member)
    const stored = storedName(member, channel)
    if (typeof mine === 'string') {
      if (mine === stored) this.set(member, [])
    } else if (mine !== undefined) {
      const at = mine.indexOf(stored)
      if (at >= 0) mine.splice(at, 1)
    }
  }

  /** Forgets the member. */
  forget (member: ChannelMember): void {
    this.set(member, undefined)
  }

  clear (): void {
    this.sealed.clear()
  }

  private get (member: ChannelMember): MemberChannels | undefined {
    const own = (member as ChannelMember & { [key: symbol]: MemberChannels | undefined })[this.key]
    return own !== undefined || this.sealed.size === 0 ? own : this.sealed.get(member)
  }

  private set (member: ChannelMember, channels: MemberChannels | undefined): void {
    if (Object.isExtensible(member)) (member as ChannelMember & { [key: symbol]: MemberChannels | undefined })[this.key] = channels
    else if (channels === undefined) this.sealed.delete(member)
    else this.sealed.set(member, channels)
  }
}
