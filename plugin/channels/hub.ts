import { randomBytes } from 'node:crypto'
import { channels, observeBroadcast } from '../core/diagnostics'
import type { SharedFrame } from '../core/frame'
import { checkClose, checkGroups, checkName, serializeObject } from './arguments'
import { BroadcastCopies } from './copies'
import { EnvelopeCodec } from './envelope'
import { ChannelLayerClosedError } from './errors'
import { settleGroups } from './outcomes'
import { FailureLog } from './failure-log'
import { HubHistory, type KeptDelivery } from './history/hub-history'
import type { HistoryEntry, HistoryStore } from './history/model'
import type { ChannelLayer, ChannelLogger } from './layer'
import { logSafely, silentLogger } from './layer'
import { MalformedLog } from './malformed-log'
import { memberIdentity, type BroadcastOptions, type ChannelMember } from './member'
import { Membership } from './membership'
import { MemoryLayer } from './memory-layer'
import { channelKeys, type ChannelSecret } from './secret'
import { GroupSizeQueries } from './size-query'

export type { BroadcastOptions, ChannelMember } from './member'

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
 * Group membership and delivery for every connection of one process. Membership is local; the layer
 * carries envelopes to the other processes, each of which delivers to its own members. One layer
 * subscription per live group per process, refcounted over members.
 */
export class ChannelHub {
  readonly layer: ChannelLayer
  /** This hub's random id; envelopes carry it so the hub ignores its own echo. */
  readonly origin: string
  /** Recoverable history (channels/history/), null when off. */
  history: HubHistory | null = null
  /** Failed publishes and presence writes, logged as one summary line per window. */
  readonly failures: FailureLog
  private readonly logger: ChannelLogger
  private readonly codec: EnvelopeCodec
  private readonly ownQueryPrefix: string
  /** Who is in which channel in this process, and the layer subscriptions that follow. */
  private readonly membership: Membership
  private readonly sizes: GroupSizeQueries
  private readonly malformed: MalformedLog
  private closed = false
  /** Copies the last local delivery of a broadcast made (the `fastify-chanx.broadcast` event). */
  private delivered = 0

  constructor (options: ChannelHubOptions = {}) {
    this.layer = options.layer ?? new MemoryLayer()
    this.logger = options.logger ?? silentLogger
    this.origin = randomBytes(8).toString('hex')
    this.codec = new EnvelopeCodec(this.origin, options.secret === undefined ? [] : channelKeys(options.secret, 'secret'))
    this.ownQueryPrefix = this.codec.prefix + '"k":"q"'
    this.sizes = new GroupSizeQueries(this.layer, this.codec, options.sizeTimeout ?? 1000)
    this.malformed = new MalformedLog(this.logger)
    this.failures = new FailureLog(this.logger)
    this.membership = new Membership(this.layer, this.logger)
    this.layer.setListener(this.receive.bind(this))
  }

  /** Reason of the 1012 close that makes a member resume after a gap in what this process received. */
  static readonly GAP_REASON = 'Missed messages: resume to recover them'

  // ---------------------------------------------------------------- membership

  /**
   * Make `member` reachable by sendToUser and disconnectUser (join its user's channel). join() does it
   * too; call it for a connection that joins no group. Anonymous members need nothing.
   */
  async attach (member: ChannelMember): Promise<void> {
    if (member.userKey === null) {
      this.membership.lists.attach(member)
      return
    }
    await this.membership.add(member, 'u:' + checkName(member.userKey, 'userKey'))
  }

  /** Join `group`; resolves once broadcasts to it from any process reach `member`. */
  async join (member: ChannelMember, group: string): Promise<void> {
    const channel = 'g:' + checkName(group, 'group')
    // Both settle before join does: a failure leaves the member out of the group when join rejects, not later.
    const [user, joined] = await Promise.allSettled([this.attach(member), this.membership.add(member, channel)])
    if (user.status === 'rejected') {
      if (joined.status === 'fulfilled') void this.membership.remove(member, channel)
      throw user.reason
    }
    if (joined.status === 'rejected') throw joined.reason
  }

  /** Leave `group`. No local broadcast reaches the member once this is called; resolves after any unsubscribe. */
  async leave (member: ChannelMember, group: string): Promise<void> {
    await this.membership.remove(member, 'g:' + checkName(group, 'group'))
  }

  /** Leave every group and the user's channel: what a closing connection calls. */
  async leaveAll (member: ChannelMember): Promise<void> {
    if (!this.membership.lists.has(member)) return
    const mine = this.membership.lists.list(member)
    this.membership.lists.forget(member)
    const pending: Promise<void>[] = []
    for (const channel of mine) pending.push(this.membership.remove(member, channel))
    await Promise.all(pending)
  }

  /** The groups `member` is in, in joining order. */
  groupsOf (member: ChannelMember): string[] {
    const out: string[] = []
    for (const channel of this.membership.lists.list(member)) if (channel.startsWith('g:')) out.push(channel.slice(2))
    return out
  }

  /** Members of `group` in this process. */
  localSize (group: string): number {
    return this.membership.of('g:' + group)?.size ?? 0
  }

  /** The members of `group` in this process (read only). */
  localMembers (group: string): ReadonlySet<ChannelMember> {
    return this.membership.of('g:' + group) ?? EMPTY
  }

  /** Called with the group's name whenever a member of this process joins or leaves a group (presence). */
  onMembershipChange (listener: ((group: string) => void) | null): void {
    this.membership.onChange(listener)
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
    const started = channels.broadcast.hasSubscribers ? performance.now() : 0
    this.delivered = 0
    let sent: Promise<void>
    if (this.history !== null) sent = this.history.broadcast(list, body, sender, senderKey, options.excludeSelf !== false)
    else {
      this.deliverGroups(list, body, sender, senderKey, options.excludeSelf !== false)
      sent = list.length === 0 ? Promise.resolve() : this.publishGroups(list, this.codec.broadcast(list, senderKey, body))
    }
    return started === 0 ? sent : observeBroadcast(sent, list, this.delivered, started)
  }

  /** Send `message` as it is (no flags) to every connection of `userKey`, in every process. */
  sendToUser (userKey: string, message: object): Promise<void> {
    const channel = 'u:' + checkName(userKey, 'userKey')
    const body = serializeObject(message)
    if (this.history !== null) return this.history.sendToUser(channel, body)
    this.deliverUser(channel, body)
    return this.publish(channel, this.codec.seal(channel, this.codec.toUser(body)))
  }

  /** Close every connection of `userKey`, in every process, with `code` and `reason`. */
  disconnectUser (userKey: string, code: number, reason = ''): Promise<void> {
    const channel = 'u:' + checkName(userKey, 'userKey')
    checkClose(code, reason)
    this.closeLocal(channel, code, reason)
    return this.publish(channel, this.codec.seal(channel, this.codec.close(code, reason)))
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
    return this.publishGroups(list, this.codec.event(list, name, json))
  }

  /**
   * Members of `group` across every process sharing the layer. The asker publishes a query on the
   * group's channel; PUBLISH says how many processes received it and each answers with its local count.
   * Rejects with FST_CHANX_CHANNEL_LAYER_TIMEOUT if they do not all answer within sizeTimeout.
   */
  async size (group: string): Promise<number> {
    const channel = 'g:' + checkName(group, 'group')
    if (this.closed) throw new ChannelLayerClosedError()
    return this.sizes.size(group, channel)
  }

  /** One publish per group; a signed envelope is signed once per group, since it names its channel. */
  private publishGroups (list: readonly string[], envelope: string): Promise<void> {
    if (list.length === 1) {
      const channel = 'g:' + list[0]
      return this.layer.publish(channel, this.codec.seal(channel, envelope)).then(() => {})
    }
    const pending: Promise<number>[] = []
    for (let i = 0; i < list.length; i++) {
      const channel = 'g:' + list[i]
      pending.push(this.layer.publish(channel, this.codec.seal(channel, envelope)))
    }
    return settleGroups(list, pending)
  }

  private publish (channel: string, envelope: string): Promise<void> {
    return this.layer.publish(channel, envelope).then(() => {})
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
   * One copy per member of the union of `list` (channels/copies.ts chooses which), each variant built on first
   * use and framed once.
   */
  private deliverGroups (list: readonly string[], body: string, sender: ChannelMember | null, senderKey: string | null,
    excludeSelf: boolean): void {
    const copies = new BroadcastCopies(body, senderKey)
    const seen = list.length > 1 ? new Set<ChannelMember>() : null
    let delivered = 0
    for (let g = 0; g < list.length; g++) {
      const set = this.membership.of('g:' + list[g])
      if (set === undefined) continue
      for (const member of set) {
        if (seen !== null) {
          if (seen.has(member)) continue
          seen.add(member)
        }
        if (member === sender && excludeSelf) continue
        this.sendCopy(member, copies.for(member.userKey, member === sender))
        delivered++
      }
    }
    this.delivered = delivered
  }

  /** Every local member of the user channel `channel` gets `body` as it is. */
  private deliverUser (channel: string, body: string): void {
    const set = this.membership.of(channel)
    if (set !== undefined) for (const member of set) this.send(member, body)
  }

  /** Local: the union of `list`, once each. */
  private deliverEvent (list: readonly string[], name: string, payload: unknown): void {
    const seen = new Set<ChannelMember>()
    for (let g = 0; g < list.length; g++) {
      const set = this.membership.of('g:' + list[g])
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

  private closeLocal (channel: string, code: number, reason: string): void {
    const set = this.membership.of(channel)
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
      const entry = this.history.receive(channel, text)
      if (entry === null) this.malformed.report(channel, text, 'bad positioned publication')
      else this.deliverEntry(channel, entry)
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
      this.malformed.report(channel, text, env)
      return
    }
    switch (env.k) {
      case 'b':
        if (!this.receiveBroadcast(channel, env.g, env.s, env.m)) this.malformed.report(channel, text, 'channel not among the groups')
        return
      case 'u':
        this.deliverUser(channel, env.m)
        return
      case 'c':
        this.closeLocal(channel, env.c, env.r)
        return
      case 'e': {
        const hearers = this.membership.firstHearers(channel, env.g)
        if (hearers === null) {
          this.malformed.report(channel, text, 'channel not among the groups')
          return
        }
        for (let i = 0; i < hearers.length; i++) this.emit(hearers[i], env.n, env.p)
        return
      }
      case 'q':
        this.answerQuery(channel, env.o, env.i)
        return
      case 'a':
        this.sizes.answered(env.i, env.n)
    }
  }

  private receiveBroadcast (channel: string, list: readonly string[], senderKey: string | null, body: string): boolean {
    // The common case, the channel first in the list: every local member hears it, no copy of the set needed.
    const hearers = list[0] === channel.slice(2) ? this.membership.of(channel) ?? [] : this.membership.firstHearers(channel, list)
    if (hearers === null) return false
    const copies = new BroadcastCopies(body, senderKey)
    // The sending connection lives in the sending process, so nothing here is "current".
    for (const member of hearers) this.sendCopy(member, copies.for(member.userKey, false))
    return true
  }

  /** A kept entry, as it came back positioned from the store that publishes: the sender's own process included. */
  private deliverEntry (channel: string, entry: HistoryEntry): void {
    if (entry.groups === null) {
      this.deliverUser(channel, entry.body)
      return
    }
    const hearers = this.membership.firstHearers(channel, entry.groups)
    if (hearers === null) return
    const copies = new BroadcastCopies(entry.body, entry.senderKey)
    for (let i = 0; i < hearers.length; i++) {
      const member = hearers[i]!
      const current = entry.sender !== null && memberIdentity(member, this.origin) === entry.sender
      if (current && entry.excluded) continue
      this.sendCopy(member, copies.for(member.userKey, current))
    }
  }

  private answerQuery (channel: string, origin: string, id: number): void {
    const n = this.membership.of(channel)?.size ?? 0
    const reply = 'r:' + origin
    this.layer.publish(reply, this.codec.seal(reply, this.codec.sizeAnswer(id, n))).catch((err: unknown) => {
      logSafely(this.logger, 'warn', err, {}, 'fastify-chanx: could not answer a group size query')
    })
  }

  private answerOwnQuery (channel: string, text: string): void {
    // Checked like any other: someone could publish a query that claims to be ours.
    const env = this.codec.open(channel, text)
    if (typeof env === 'string' || env.k !== 'q' || env.o !== this.origin) {
      this.malformed.report(channel, text, typeof env === 'string' ? env : 'bad size query')
      return
    }
    // Counted when the query comes back rather than when size() was called, as the others count.
    this.sizes.answered(env.i, this.membership.of(channel)?.size ?? 0)
  }

  // ---------------------------------------------------------------- history

  /** A member's identity across reconnections: its recovery token, else this process's origin and its id. */
  identityOf (member: ChannelMember): string {
    return memberIdentity(member, this.origin)
  }

  /** Keep broadcasts and user messages from now on (a store per hub; set once, before any broadcast). */
  useHistory (store: HistoryStore): void {
    const delivery: KeptDelivery = {
      listens: (channel) => this.membership.has(channel),
      deliverGroups: (list, body, sender, senderKey, excludeSelf) => this.deliverGroups(list, body, sender, senderKey, excludeSelf),
      deliverUser: (channel, body) => this.deliverUser(channel, body),
      publishGroups: (list, envelope) => this.publishGroups(list, envelope),
      publish: (channel, envelope) => this.publish(channel, envelope),
      gap: (channel) => this.closeResuming(channel)
    }
    const history = new HubHistory(store, this.codec, delivery)
    this.history = history
    if (store.publishes) {
      this.membership.onEmpty((channel) => history.forget(channel))
      this.layer.onResubscribed?.(() => {
        history.verify().catch((err: unknown) => logSafely(this.logger, 'warn', err, {}, 'fastify-chanx: could not check the history streams after a resubscription'))
      })
    }
  }

  /**
   * A gap in what this process received on `channel`: each local member with a recovery token (a socket on
   * a route with history) is closed with 1012, so its client resumes from its last position and is
   * replayed the gap, or told (docs/recovery.md, "Guarantees"). Members without one cannot recover anyway.
   */
  private closeResuming (channel: string): void {
    const set = this.membership.of(channel)
    if (set === undefined) return
    let closed = 0
    // Copied: a closing member may leave (and so change the set) synchronously.
    for (const member of [...set]) {
      if (member.recoveryToken == null) continue
      closed++
      try {
        member.close(1012, ChannelHub.GAP_REASON)
      } catch (err) {
        logSafely(this.logger, 'warn', err, { member: member.id }, 'fastify-chanx: a member failed to close')
      }
    }
    if (closed > 0) this.logger.warn({ channel, closed }, 'fastify-chanx: publications were not received (a lost subscription); the members that can resume were closed with 1012')
  }

  /** Stop: pending counts fail, the layer is closed. Members are not closed; the caller owns them. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.history?.close()
    this.sizes.close()
    this.failures.flush()
    this.membership.close()
    await this.layer.close()
  }
}
