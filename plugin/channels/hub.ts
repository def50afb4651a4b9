import { randomBytes } from 'node:crypto'
import { SharedFrame } from '../core/frame'
import { EnvelopeCodec, withFlags } from '../core/wire'
import { checkGroups, checkName, serializeObject } from './arguments'
import { channelKeys, type ChannelSecret } from './secret'
import type { ChannelLayer, ChannelLogger } from './layer'
import { logSafely, silentLogger } from './layer'
import { ChannelLayerClosedError, ChannelLayerTimeoutError, InvalidChannelArgumentError } from './errors'
import { MemoryLayer } from './memory-layer'
import {
  parsePositioned, parseRecord, historyRecord, withGroupPositions, withUserPosition,
  type HistoryEntry, type HistoryStore, type LocalHistoryStore, type PublishingHistoryStore
} from './history/model'

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

export interface ChannelHubOptions {
  /** Default: a new in-process {@link MemoryLayer}. The hub closes it on close(). */
  layer?: ChannelLayer
  /** Malformed envelopes, failed sends and failed event handlers are reported here. */
  logger?: ChannelLogger
  /** How long size() waits for the other processes' counts (default 1000 ms). */
  sizeTimeout?: number
  /**
   * Sign every envelope with HMAC-SHA256 and drop every envelope not signed with one of these (the
   * first signs): whoever can publish on the layer (Redis) cannot then forge broadcasts, user messages
   * or disconnects. At least 32 bytes each; every process sharing the layer needs the same list.
   */
  secret?: ChannelSecret
}

const EMPTY: ReadonlySet<ChannelMember> = new Set()

/**
 * A member's channels in joining order: one name alone (most sockets are in their user's channel only),
 * a list once there are several or none. An array per idle socket would cost two more objects.
 */
type MemberChannels = string | string[]

function listOf (channels: MemberChannels | undefined): readonly string[] {
  return channels === undefined ? [] : typeof channels === 'string' ? [channels] : channels
}

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

/** The channel a stored name stands for. */
function channelName (member: ChannelMember, stored: string): string {
  return stored === OWN_USER_CHANNEL ? OWN_USER_CHANNEL + member.userKey! : stored
}
type OwnRecord = Omit<HistoryEntry, 'offset' | 'time'>

/** At most this many malformed envelopes are logged per window; the rest are counted in the next line. */
const MALFORMED_LOGS = 10
const MALFORMED_WINDOW = 10_000

interface PendingCount {
  total: number
  answers: number
  expected: number
  resolve (n: number): void
  reject (err: Error): void
  timer: NodeJS.Timeout
}

/**
 * Group membership and delivery for every connection of one process. Membership is local; the layer
 * carries envelopes to the other processes, each of which delivers to its own members. One layer
 * subscription per live group per process, refcounted over members.
 */
export class ChannelHub {
  readonly layer: ChannelLayer
  /** This hub's random id; envelopes carry it so the hub ignores its own echo. */
  readonly origin: string
  private readonly logger: ChannelLogger
  private readonly sizeTimeout: number
  private readonly codec: EnvelopeCodec
  private readonly ownQueryPrefix: string
  /** layer channel -> local members */
  private readonly channels = new Map<string, Set<ChannelMember>>()
  /**
   * member -> layer channels it is in, in joining order (MemberChannels), kept on the member itself under this
   * hub's own symbol (no Map entry and Set per connection); a member that cannot take a property (frozen)
   * is kept in `sealedMembers` instead.
   */
  private readonly kChannels: symbol = Symbol('fastify-chanx.hub-channels')
  private readonly sealedMembers = new Map<ChannelMember, MemberChannels>()
  /** layer channel -> the subscription its members await */
  private readonly subscriptions = new Map<string, Promise<void>>()
  /** layer channel -> tail of its subscribe/unsubscribe chain, so the layer sees them in order */
  private readonly chains = new Map<string, Promise<void>>()
  private readonly counts = new Map<number, PendingCount>()
  private replyChannel: Promise<void> | null = null
  private membershipListener: ((group: string) => void) | null = null
  private nextQuery = 0
  private closed = false
  private malformedWindow = 0
  private malformedLogged = 0
  private malformedSuppressed = 0
  /** Recoverable history (issue 17), null when off: then nothing below the "history" section runs. */
  history: HistoryStore | null = null
  /** With a store that publishes: what this hub published and awaits back, by channel + record, so its echo is not parsed again. */
  private readonly ownRecords = new Map<string, OwnRecord>()

  constructor (options: ChannelHubOptions = {}) {
    this.layer = options.layer ?? new MemoryLayer()
    this.logger = options.logger ?? silentLogger
    this.sizeTimeout = options.sizeTimeout ?? 1000
    this.origin = randomBytes(8).toString('hex')
    this.codec = new EnvelopeCodec(this.origin, options.secret === undefined ? [] : channelKeys(options.secret, 'secret'))
    this.ownQueryPrefix = this.codec.prefix + '"k":"q"'
    this.layer.setListener(this.receive.bind(this))
  }

  // ---------------------------------------------------------------- membership

  /**
   * Make `member` reachable by sendToUser and disconnectUser (join its user's channel). join() does it
   * too; call it for a connection that joins no group. Anonymous members need nothing.
   */
  async attach (member: ChannelMember): Promise<void> {
    if (member.userKey === null) {
      if (this.channelsOf(member) === undefined) this.setChannelsOf(member, [])
      return
    }
    await this.add(member, 'u:' + checkName(member.userKey, 'userKey'))
  }

  /** Join `group`; resolves once broadcasts to it from any process reach `member`. */
  async join (member: ChannelMember, group: string): Promise<void> {
    const channel = 'g:' + checkName(group, 'group')
    // Both settle before join does: a failure leaves the member out of the group when join rejects, not later.
    const [user, joined] = await Promise.allSettled([this.attach(member), this.add(member, channel)])
    if (user.status === 'rejected') {
      if (joined.status === 'fulfilled') void this.remove(member, channel)
      throw user.reason
    }
    if (joined.status === 'rejected') throw joined.reason
  }

  /** Leave `group`. No local broadcast reaches the member once this is called; resolves after any unsubscribe. */
  async leave (member: ChannelMember, group: string): Promise<void> {
    await this.remove(member, 'g:' + checkName(group, 'group'))
  }

  /** Leave every group and the user's channel: what a closing connection calls. */
  async leaveAll (member: ChannelMember): Promise<void> {
    const mine = this.channelsOf(member)
    if (mine === undefined) return
    this.setChannelsOf(member, undefined)
    const pending: Promise<void>[] = []
    for (const stored of listOf(mine)) pending.push(this.remove(member, channelName(member, stored)))
    await Promise.all(pending)
  }

  /** The groups `member` is in, in joining order. */
  groupsOf (member: ChannelMember): string[] {
    const out: string[] = []
    for (const channel of listOf(this.channelsOf(member))) if (channel.startsWith('g:')) out.push(channel.slice(2))
    return out
  }

  /** Members of `group` in this process. */
  localSize (group: string): number {
    return this.channels.get('g:' + group)?.size ?? 0
  }

  /** The members of `group` in this process (read only). */
  localMembers (group: string): ReadonlySet<ChannelMember> {
    return this.channels.get('g:' + group) ?? EMPTY
  }

  /** Called with the group's name whenever a member of this process joins or leaves a group (presence). */
  onMembershipChange (listener: ((group: string) => void) | null): void {
    this.membershipListener = listener
  }

  private membershipChanged (channel: string): void {
    if (this.membershipListener !== null && channel.startsWith('g:')) this.membershipListener(channel.slice(2))
  }

  private async add (member: ChannelMember, channel: string): Promise<void> {
    if (this.closed) throw new ChannelLayerClosedError()
    const mine = this.channelsOf(member)
    const stored = storedName(member, channel)
    if (mine === undefined) this.setChannelsOf(member, stored)
    else if (typeof mine === 'string') {
      if (mine !== stored) this.setChannelsOf(member, [mine, stored])
    } else if (!mine.includes(stored)) mine.push(stored)
    let set = this.channels.get(channel)
    if (set === undefined) {
      set = new Set()
      this.channels.set(channel, set)
      this.subscriptions.set(channel, this.enqueue(channel, () => this.layer.subscribe(channel)))
    }
    set.add(member)
    this.membershipChanged(channel)
    try {
      await this.subscriptions.get(channel)
    } catch (err) {
      // Not subscribed: undo, so the member is not half in a group that other processes cannot reach.
      // The undo's unsubscribe is not awaited: during an outage it would double the wait of join().
      if (set.has(member)) void this.remove(member, channel)
      throw err
    }
  }

  private remove (member: ChannelMember, channel: string): Promise<void> {
    const set = this.channels.get(channel)
    const mine = this.channelsOf(member)
    const stored = storedName(member, channel)
    if (typeof mine === 'string') {
      if (mine === stored) this.setChannelsOf(member, [])
    } else if (mine !== undefined) {
      const at = mine.indexOf(stored)
      if (at >= 0) mine.splice(at, 1)
    }
    if (set === undefined || !set.delete(member)) return Promise.resolve()
    this.membershipChanged(channel)
    if (set.size > 0) return Promise.resolve()
    this.channels.delete(channel)
    this.subscriptions.delete(channel)
    return this.enqueue(channel, () => this.layer.unsubscribe(channel)).catch((err: Error) => {
      this.logger.warn({ err, channel }, 'fastify-chanx: could not unsubscribe from a channel')
    })
  }

  private channelsOf (member: ChannelMember): MemberChannels | undefined {
    const own = (member as ChannelMember & { [key: symbol]: MemberChannels | undefined })[this.kChannels]
    return own !== undefined || this.sealedMembers.size === 0 ? own : this.sealedMembers.get(member)
  }

  private setChannelsOf (member: ChannelMember, channels: MemberChannels | undefined): void {
    if (Object.isExtensible(member)) (member as ChannelMember & { [key: symbol]: MemberChannels | undefined })[this.kChannels] = channels
    else if (channels === undefined) this.sealedMembers.delete(member)
    else this.sealedMembers.set(member, channels)
  }

  private enqueue (channel: string, op: () => Promise<void>): Promise<void> {
    const previous = this.chains.get(channel) ?? Promise.resolve()
    const next = previous.then(op)
    const tail = next.catch(() => {})
    this.chains.set(channel, tail)
    tail.then(() => { if (this.chains.get(channel) === tail) this.chains.delete(channel) })
    return next
  }

  // ---------------------------------------------------------------- sending

  /**
   * Deliver `message` to every member of `groups`, in every process: one copy per member however many
   * of the groups it is in, each with top-level `is_mine` and `is_current`. The message is serialized
   * once, the envelope built once and published once per group. Local members have it when this
   * returns; the promise settles when every publish did, and rejects with
   * FST_CHANX_CHANNEL_LAYER_PUBLISH_FAILED if one failed (the local delivery stands).
   */
  broadcast (groups: string | readonly string[], message: object, options: BroadcastOptions = {}): Promise<void> {
    const list = checkGroups(groups)
    const body = serializeObject(message)
    const sender = options.sender ?? null
    const senderKey = sender === null ? null : sender.userKey
    if (this.history !== null) return this.broadcastKept(list, body, sender, senderKey, options.excludeSelf !== false)
    this.deliverLocal(list, body, sender, senderKey, options.excludeSelf !== false)
    if (list.length === 0) return Promise.resolve()
    return this.publishAll(list, this.codec.broadcast(list, senderKey, body))
  }

  /** Send `message` as it is (no flags) to every connection of `userKey`, in every process. */
  sendToUser (userKey: string, message: object): Promise<void> {
    const channel = 'u:' + checkName(userKey, 'userKey')
    const body = serializeObject(message)
    if (this.history !== null) return this.sendToUserKept(channel, body)
    const set = this.channels.get(channel)
    if (set !== undefined) for (const member of set) this.send(member, body)
    return this.layer.publish(channel, this.codec.seal(channel, this.codec.toUser(body))).then(() => {})
  }

  /** Close every connection of `userKey`, in every process, with `code` and `reason`. */
  disconnectUser (userKey: string, code: number, reason = ''): Promise<void> {
    const channel = 'u:' + checkName(userKey, 'userKey')
    if (!Number.isInteger(code) || !(code === 1000 || (code >= 3000 && code <= 4999))) {
      throw new InvalidChannelArgumentError('a close code must be 1000 or an integer from 3000 to 4999')
    }
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
      throw new InvalidChannelArgumentError('a close reason must be a string of at most 123 bytes')
    }
    this.closeLocal(channel, code, reason)
    return this.layer.publish(channel, this.codec.seal(channel, this.codec.close(code, reason))).then(() => {})
  }

  /**
   * Run each member's onEvent(name, payload) for the members of `groups`, in every process, once per
   * member. The payload goes through JSON (once per process), so every receiver sees the same shape.
   */
  sendEvent (groups: string | readonly string[], name: string, payload: unknown): Promise<void> {
    const list = checkGroups(groups)
    checkName(name, 'event name')
    const json = JSON.stringify(payload ?? null)
    this.deliverEvent(list, name, JSON.parse(json))
    if (list.length === 0) return Promise.resolve()
    return this.publishAll(list, this.codec.event(list, name, json))
  }

  /**
   * Members of `group` across every process sharing the layer. The asker publishes a query on the
   * group's channel; PUBLISH says how many processes received it and each answers with its local count.
   * Rejects with FST_CHANX_CHANNEL_LAYER_TIMEOUT if they do not all answer within sizeTimeout.
   */
  async size (group: string): Promise<number> {
    const channel = 'g:' + checkName(group, 'group')
    if (this.closed) throw new ChannelLayerClosedError()
    if (this.replyChannel === null) {
      const subscribing = this.layer.subscribe('r:' + this.origin)
      this.replyChannel = subscribing
      // A subscription that failed (Redis down) is retried by the next size(), never cached.
      subscribing.catch(() => { if (this.replyChannel === subscribing) this.replyChannel = null })
    }
    await this.replyChannel
    const id = ++this.nextQuery
    const result = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.counts.delete(id)
        reject(new ChannelLayerTimeoutError(`counting the members of "${group}"`, this.sizeTimeout))
      }, this.sizeTimeout)
      timer.unref()
      this.counts.set(id, { total: 0, answers: 0, expected: -1, resolve, reject, timer })
    })
    try {
      const receivers = await this.layer.publish(channel, this.codec.seal(channel, this.codec.sizeQuery(id)))
      const pending = this.counts.get(id)
      if (pending !== undefined) {
        pending.expected = receivers
        this.settleCount(id, pending)
      }
    } catch (err) {
      const pending = this.counts.get(id)
      if (pending !== undefined) {
        clearTimeout(pending.timer)
        this.counts.delete(id)
        pending.reject(err as Error)
      }
    }
    return result
  }

  private settleCount (id: number, pending: PendingCount): void {
    if (pending.expected < 0 || pending.answers < pending.expected) return
    clearTimeout(pending.timer)
    this.counts.delete(id)
    pending.resolve(pending.total)
  }

  /** One publish per group; a signed envelope is signed once per group, since it names its channel. */
  private publishAll (list: readonly string[], envelope: string): Promise<void> {
    if (list.length === 1) {
      const channel = 'g:' + list[0]
      return this.layer.publish(channel, this.codec.seal(channel, envelope)).then(() => {})
    }
    const pending: Promise<number>[] = []
    for (let i = 0; i < list.length; i++) {
      const channel = 'g:' + list[i]
      pending.push(this.layer.publish(channel, this.codec.seal(channel, envelope)))
    }
    return Promise.all(pending).then(() => {})
  }

  private send (member: ChannelMember, data: string): void {
    try {
      member.send(data)
    } catch (err) {
      logSafely(this.logger, 'warn', err, { member: member.id }, 'fastify-chanx: a member failed to send')
    }
  }

  private sendCopy (member: ChannelMember, frame: SharedFrame): void {
    try {
      if (member.sendCopy !== undefined) member.sendCopy(frame.text, frame)
      else member.send(frame.text)
    } catch (err) {
      logSafely(this.logger, 'warn', err, { member: member.id }, 'fastify-chanx: a member failed to send')
    }
  }

  /**
   * One copy per member of the union of `list`. The three variants a process can need are built on first
   * use: mine and current (the sender itself, excludeSelf off), mine (the sender's user's other sockets),
   * and neither. An anonymous sender is never "mine".
   */
  private deliverLocal (list: readonly string[], body: string, sender: ChannelMember | null, senderKey: string | null,
    excludeSelf: boolean): void {
    let self: SharedFrame | null = null
    let mine: SharedFrame | null = null
    let other: SharedFrame | null = null
    const seen = list.length > 1 ? new Set<ChannelMember>() : null
    for (let g = 0; g < list.length; g++) {
      const set = this.channels.get('g:' + list[g])
      if (set === undefined) continue
      for (const member of set) {
        if (seen !== null) {
          if (seen.has(member)) continue
          seen.add(member)
        }
        let frame: SharedFrame
        if (member === sender) {
          if (excludeSelf) continue
          frame = self ??= new SharedFrame(withFlags(body, senderKey !== null, true))
        } else if (senderKey !== null && member.userKey === senderKey) {
          frame = mine ??= new SharedFrame(withFlags(body, true, false))
        } else {
          frame = other ??= new SharedFrame(withFlags(body, false, false))
        }
        this.sendCopy(member, frame)
      }
    }
  }

  /** Local: the union of `list`, once each. */
  private deliverEvent (list: readonly string[], name: string, payload: unknown): void {
    const seen = new Set<ChannelMember>()
    for (let g = 0; g < list.length; g++) {
      const set = this.channels.get('g:' + list[g])
      if (set === undefined) continue
      for (const member of set) {
        if (seen.has(member)) continue
        seen.add(member)
        this.emit(member, name, payload)
      }
    }
  }

  private emit (member: ChannelMember, name: string, payload: unknown): void {
    if (member.onEvent === undefined) return
    try {
      member.onEvent(name, payload)
    } catch (err) {
      logSafely(this.logger, 'error', err, { member: member.id, event: name }, 'fastify-chanx: a channel event handler failed')
    }
  }

  /**
   * The members of `channel` that hear an envelope published to every group of `list`: one envelope
   * arrives per group, so a member of several hears it on the first of them only.
   */
  private firstHearers (channel: string, list: readonly string[]): ChannelMember[] | null {
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

  private closeLocal (channel: string, code: number, reason: string): void {
    const set = this.channels.get(channel)
    if (set === undefined) return
    // Copied: a closing member may leave (and so change the set) synchronously.
    for (const member of [...set]) {
      try {
        member.close(code, reason)
      } catch (err) {
        logSafely(this.logger, 'warn', err, { member: member.id }, 'fastify-chanx: a member failed to close')
      }
    }
  }

  // ---------------------------------------------------------------- receiving

  private receive (channel: string, text: string): void {
    if (this.history !== null && text.charCodeAt(0) === 126) {
      this.receivePositioned(channel, text)
      return
    }
    // Our own echo: already delivered locally. Our own size query still counts as one answer (ours,
    // already in the total) because PUBLISH counted this process among its receivers.
    if (text.startsWith(this.codec.prefix)) {
      if (text.startsWith(this.ownQueryPrefix)) this.answerOwnQuery(channel, text)
      return
    }
    // Whoever can publish on the layer wrote this: it is checked in full (and its signature, when a
    // secret is set) before anything is delivered.
    const env = this.codec.open(channel, text)
    if (typeof env === 'string') {
      this.malformed(channel, text, env)
      return
    }
    switch (env.k) {
      case 'b':
        if (!this.receiveBroadcast(channel, env.g, env.s, env.m)) this.malformed(channel, text, 'channel not among the groups')
        return
      case 'u': {
        const set = this.channels.get(channel)
        if (set !== undefined) for (const member of set) this.send(member, env.m)
        return
      }
      case 'c':
        this.closeLocal(channel, env.c, env.r)
        return
      case 'e': {
        const hearers = this.firstHearers(channel, env.g)
        if (hearers === null) {
          this.malformed(channel, text, 'channel not among the groups')
          return
        }
        for (let i = 0; i < hearers.length; i++) this.emit(hearers[i], env.n, env.p)
        return
      }
      case 'q':
        this.answerQuery(channel, env.o, env.i)
        return
      case 'a': {
        const pending = this.counts.get(env.i)
        if (pending === undefined) return
        pending.total += env.n
        pending.answers++
        this.settleCount(env.i, pending)
      }
    }
  }

  private receiveBroadcast (channel: string, list: readonly string[], senderKey: string | null, body: string): boolean {
    // The common case, the channel first in the list: every local member hears it, no copy of the set needed.
    const hearers = list[0] === channel.slice(2) ? this.channels.get(channel) ?? [] : this.firstHearers(channel, list)
    if (hearers === null) return false
    let mine: SharedFrame | null = null
    let other: SharedFrame | null = null
    for (const member of hearers) {
      // The sending connection lives in the sending process, so nothing here is "current".
      const frame = senderKey !== null && member.userKey === senderKey
        ? (mine ??= new SharedFrame(withFlags(body, true, false)))
        : (other ??= new SharedFrame(withFlags(body, false, false)))
      this.sendCopy(member, frame)
    }
    return true
  }

  private answerQuery (channel: string, origin: string, id: number): void {
    const n = this.channels.get(channel)?.size ?? 0
    const reply = 'r:' + origin
    this.layer.publish(reply, this.codec.seal(reply, this.codec.sizeAnswer(id, n))).catch((err: unknown) => {
      logSafely(this.logger, 'warn', err, {}, 'fastify-chanx: could not answer a group size query')
    })
  }

  private answerOwnQuery (channel: string, text: string): void {
    // Checked like any other: someone could publish a query that claims to be ours.
    const env = this.codec.open(channel, text)
    if (typeof env === 'string' || env.k !== 'q' || env.o !== this.origin) {
      this.malformed(channel, text, typeof env === 'string' ? env : 'bad size query')
      return
    }
    const pending = this.counts.get(env.i)
    if (pending === undefined) return
    // Counted when the query comes back rather than when size() was called, as the others count.
    pending.total += this.channels.get(channel)?.size ?? 0
    pending.answers++
    this.settleCount(env.i, pending)
  }

  /** Dropped and logged, at most MALFORMED_LOGS lines per window: a flood of forgeries cannot flood the log. */
  private malformed (channel: string, text: string, reason: string): void {
    const now = Date.now()
    if (now - this.malformedWindow >= MALFORMED_WINDOW) {
      this.malformedWindow = now
      this.malformedLogged = 0
    }
    if (this.malformedLogged >= MALFORMED_LOGS) {
      this.malformedSuppressed++
      return
    }
    this.malformedLogged++
    const suppressed = this.malformedSuppressed
    this.malformedSuppressed = 0
    this.logger.warn({ channel: channel.slice(0, 300), reason, envelope: text.slice(0, 200), suppressed },
      'fastify-chanx: ignored a malformed channel envelope')
  }

  // ---------------------------------------------------------------- history (issue 17, plugin/channels/history.ts)

  /** A member's identity across reconnections: its recovery token, else this process's origin and its id. */
  identityOf (member: ChannelMember): string {
    return member.recoveryToken ?? this.origin + ':' + member.id
  }

  /** Keep broadcasts and user messages from now on (a store per hub; set once, before any broadcast). */
  useHistory (store: HistoryStore): void {
    this.history = store
    if (store.publishes) (store as PublishingHistoryStore).decoder = this.decodeRecord.bind(this)
  }

  private broadcastKept (list: readonly string[], body: string, sender: ChannelMember | null, senderKey: string | null,
    excludeSelf: boolean): Promise<void> {
    if (list.length === 0) return Promise.resolve()
    const identity = sender === null ? null : this.identityOf(sender)
    const excluded = sender !== null && excludeSelf
    const store = this.history!
    if (store.publishes) {
      // Positions are Redis's: every process, this one included, delivers when the publication comes back.
      const pending: Promise<number>[] = []
      for (let i = 0; i < list.length; i++) {
        const channel = 'g:' + list[i]
        const envelope = this.codec.seal(channel, this.codec.broadcast(list, senderKey, body))
        const own: OwnRecord = { body, groups: list, senderKey, sender: identity, excluded }
        pending.push(this.publishOwn(store as PublishingHistoryStore, channel, historyRecord(excluded, identity, envelope), own))
      }
      return Promise.all(pending).then(() => {})
    }
    const local = store as LocalHistoryStore
    const positions = list.map((group) => local.next('g:' + group))
    const kept = withGroupPositions(body, list, positions)
    const time = local.clock()
    for (let i = 0; i < list.length; i++) {
      local.keep('g:' + list[i], { offset: positions[i]!.offset, time, body: kept, groups: list, senderKey, sender: identity, excluded })
    }
    this.deliverLocal(list, kept, sender, senderKey, excludeSelf)
    return this.publishAll(list, this.codec.broadcast(list, senderKey, kept))
  }

  private sendToUserKept (channel: string, body: string): Promise<void> {
    const store = this.history!
    if (store.publishes) {
      const envelope = this.codec.seal(channel, this.codec.toUser(body))
      const own: OwnRecord = { body, groups: null, senderKey: null, sender: null, excluded: false }
      return this.publishOwn(store as PublishingHistoryStore, channel, historyRecord(false, null, envelope), own).then(() => {})
    }
    const local = store as LocalHistoryStore
    const position = local.next(channel)
    const kept = withUserPosition(body, position)
    local.keep(channel, { offset: position.offset, time: local.clock(), body: kept, groups: null, senderKey: null, sender: null, excluded: false })
    const set = this.channels.get(channel)
    if (set !== undefined) for (const member of set) this.send(member, kept)
    return this.layer.publish(channel, this.codec.seal(channel, this.codec.toUser(kept))).then(() => {})
  }

  /** Publishes `record`, remembering it when this process listens on `channel` (it will hear it back). */
  private publishOwn (store: PublishingHistoryStore, channel: string, record: string, own: OwnRecord): Promise<number> {
    if (!this.channels.has(channel)) return store.publish(channel, record)
    // Bounded: an echo can be lost (an unsubscribe meanwhile, a Redis outage).
    if (this.ownRecords.size >= 10_000) this.ownRecords.clear()
    const key = channel + '\n' + record
    this.ownRecords.set(key, own)
    return store.publish(channel, record).catch((err: unknown) => {
      this.ownRecords.delete(key)
      throw err
    })
  }

  /** A kept record, checked like any envelope, as an entry with its position in the message; null if refused. */
  private decodeRecord (channel: string, offset: number, epoch: string, time: number, text: string): HistoryEntry | null {
    const record = parseRecord(text)
    if (record === null) return null
    const env = this.codec.open(channel, record.envelope)
    if (typeof env === 'string') return null
    if (env.k === 'b') {
      const group = channel.slice(2)
      if (!env.g.includes(group)) return null
      const body = withGroupPositions(env.m, [group], [{ offset, epoch }])
      return { offset, time, body, groups: env.g, senderKey: env.s, sender: record.sender, excluded: record.excluded }
    }
    if (env.k === 'u') return { offset, time, body: withUserPosition(env.m, { offset, epoch }), groups: null, senderKey: null, sender: null, excluded: false }
    return null
  }

  /** A publication of a store that publishes (`~offset~epoch~record`): delivered here, the sender's process included. */
  private receivePositioned (channel: string, text: string): void {
    const positioned = parsePositioned(text)
    let entry: HistoryEntry | null = null
    if (positioned !== null) {
      const key = channel + '\n' + positioned.record
      const own = this.ownRecords.get(key)
      if (own === undefined) {
        entry = this.decodeRecord(channel, positioned.offset, positioned.epoch, 0, positioned.record)
      } else {
        // Our own publication: known already, not parsed again.
        this.ownRecords.delete(key)
        const position = { offset: positioned.offset, epoch: positioned.epoch }
        const body = own.groups === null ? withUserPosition(own.body, position) : withGroupPositions(own.body, [channel.slice(2)], [position])
        entry = { ...own, offset: position.offset, time: 0, body }
      }
    }
    if (entry === null) {
      this.malformed(channel, text, 'bad positioned publication')
      return
    }
    if (entry.groups === null) {
      const set = this.channels.get(channel)
      if (set !== undefined) for (const member of set) this.send(member, entry.body)
      return
    }
    const hearers = this.firstHearers(channel, entry.groups)
    if (hearers === null) return
    let self: SharedFrame | null = null
    let mine: SharedFrame | null = null
    let other: SharedFrame | null = null
    const senderKey = entry.senderKey
    for (let i = 0; i < hearers.length; i++) {
      const member = hearers[i]!
      let frame: SharedFrame
      if (entry.sender !== null && this.identityOf(member) === entry.sender) {
        if (entry.excluded) continue
        frame = self ??= new SharedFrame(withFlags(entry.body, senderKey !== null, true))
      } else if (senderKey !== null && member.userKey === senderKey) {
        frame = mine ??= new SharedFrame(withFlags(entry.body, true, false))
      } else {
        frame = other ??= new SharedFrame(withFlags(entry.body, false, false))
      }
      this.sendCopy(member, frame)
    }
  }

  /** Stop: pending counts fail, the layer is closed. Members are not closed; the caller owns them. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.history?.close()
    for (const [id, pending] of this.counts) {
      clearTimeout(pending.timer)
      this.counts.delete(id)
      pending.reject(new ChannelLayerClosedError())
    }
    for (const set of this.channels.values()) for (const member of set) this.setChannelsOf(member, undefined)
    this.channels.clear()
    this.sealedMembers.clear()
    this.subscriptions.clear()
    await this.layer.close()
  }
}
