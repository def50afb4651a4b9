import { SharedFrame } from '../core/frame'
import { withFlags } from './envelope'

/**
 * The copy of a broadcast one member gets (DESIGN "Groups"): `is_current` for the sending connection itself,
 * `is_mine` for every socket of the sending user (an anonymous sender is never "mine"). The one place these
 * rules are written: live delivery, delivery of a positioned publication and a replay all choose here.
 */
export function flaggedCopy (body: string, senderKey: string | null, memberKey: string | null, current: boolean): string {
  if (current) return withFlags(body, senderKey !== null, true)
  return withFlags(body, senderKey !== null && memberKey === senderKey, false)
}

/**
 * The at most three variants of one broadcast a process can need (mine and current, mine, neither), each
 * built and framed on first use and shared by every member that gets it.
 */
export class BroadcastCopies {
  private self: SharedFrame | null = null
  private mine: SharedFrame | null = null
  private other: SharedFrame | null = null

  constructor (private readonly body: string, private readonly senderKey: string | null) {}

  /** The copy for a member of user `memberKey`; `current`: the member is the sending connection. */
  for (memberKey: string | null, current: boolean): SharedFrame {
    if (current) return (this.self ??= new SharedFrame(flaggedCopy(this.body, this.senderKey, memberKey, true)))
    if (this.senderKey !== null && memberKey === this.senderKey) {
      return (this.mine ??= new SharedFrame(flaggedCopy(this.body, this.senderKey, memberKey, false)))
    }
    return (this.other ??= new SharedFrame(flaggedCopy(this.body, this.senderKey, memberKey, false)))
  }
}
