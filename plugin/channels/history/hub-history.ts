import type { EnvelopeCodec } from '../envelope'
import { memberIdentity, type ChannelMember } from '../member'
import type { HistoryEntry, HistoryStore, LocalHistoryStore, PublishingHistoryStore, Position, ReadResult } from './model'
import { historyRecord, parsePositioned, parseRecord, withGroupPositions, withUserPosition } from './positions'
import { outcomeOf, settleGroups, withGroups } from '../outcomes'

type OwnRecord = Omit<HistoryEntry, 'offset' | 'time'>

/** At most this many own publications are remembered while their echo is awaited (an echo can be lost). */
const MAX_OWN_RECORDS = 10_000

/** What the history needs of the hub that owns it: its local delivery and its publishing. */
export interface KeptDelivery {
  /** Whether this process has members on `channel` (it then hears its own publication back). */
  listens (channel: string): boolean
  /** Every local member of `groups` gets its copy of `body` now. */
  deliverGroups (groups: readonly string[], body: string, sender: ChannelMember | null, senderKey: string | null, excludeSelf: boolean): void
  /** Every local member of the user channel `channel` gets `body` now. */
  deliverUser (channel: string, body: string): void
  /** One publish of `envelope` per group, to the other processes. */
  publishGroups (groups: readonly string[], envelope: string): Promise<void>
  /** `envelope` published on `channel`, to the other processes. */
  publish (channel: string, envelope: string): Promise<void>
  /**
   * Publications of `channel` were never received here (a gap in its offsets, a new epoch): every local
   * member that resumes this stream is closed, so that it resumes and is replayed the gap or told.
   */
  gap (channel: string): void
}

/** The last position received on one stream (mutated in place: no object per publication). */
interface Received {
  offset: number
  epoch: string
}

/**
 * The hub's recoverable history (docs/recovery.md): what a broadcast and a user message become when kept,
 * how a positioned publication from a store that publishes (Redis) is checked and turned back into an
 * entry, and the reads a resume makes. The hub owns one and hands it its envelope codec, which checks every
 * record read back as it checks any envelope.
 */
export class HubHistory {
  /** With a store that publishes: what this hub published and awaits back, by channel + record, so its echo is not parsed again. */
  private readonly ownRecords = new Map<string, OwnRecord>()
  /**
   * With a store that publishes: the last position received per stream this process listens to, seeded by
   * the reads a joining socket makes. A publication that does not follow it reveals a gap (docs/recovery.md,
   * "Guarantees"): pub/sub over Redis is at-most-once, the Stream is not.
   */
  private readonly received = new Map<string, Received>()

  constructor (readonly store: HistoryStore, private readonly codec: EnvelopeCodec, private readonly delivery: KeptDelivery) {}

  get limits (): HistoryStore['limits'] {
    return this.store.limits
  }

  /** A member's identity across reconnections (what `sender` of a kept entry names). */
  identityOf (member: ChannelMember): string {
    return memberIdentity(member, this.codec.origin)
  }

  broadcast (list: readonly string[], body: string, sender: ChannelMember | null, senderKey: string | null, excludeSelf: boolean): Promise<void> {
    if (list.length === 0) return Promise.resolve()
    const identity = sender === null ? null : this.identityOf(sender)
    const excluded = sender !== null && excludeSelf
    const store = this.store
    if (store.publishes) {
      // Positions are Redis's: every process, this one included, delivers when the publication comes back.
      const publishing = store as PublishingHistoryStore
      const own: OwnRecord = { body, groups: list, senderKey, sender: identity, excluded }
      if (list.length > 1 && publishing.publishMany !== undefined) return this.publishOwnMany(publishing, list, identity, excluded, senderKey, body, own)
      const pending: Promise<number>[] = []
      for (let i = 0; i < list.length; i++) {
        const channel = 'g:' + list[i]
        const envelope = this.codec.seal(channel, this.codec.broadcast(list, senderKey, body))
        pending.push(this.publishOwn(publishing, channel, historyRecord(excluded, identity, envelope), own))
      }
      return list.length === 1 ? pending[0]!.then(() => {}) : settleGroups(list, pending)
    }
    const local = store as LocalHistoryStore
    const positions = list.map((group) => local.next('g:' + group))
    const kept = withGroupPositions(body, list, positions)
    const time = local.clock()
    for (let i = 0; i < list.length; i++) {
      local.keep('g:' + list[i], { offset: positions[i]!.offset, time, body: kept, groups: list, senderKey, sender: identity, excluded })
    }
    this.delivery.deliverGroups(list, kept, sender, senderKey, excludeSelf)
    return this.delivery.publishGroups(list, this.codec.broadcast(list, senderKey, kept))
  }

  sendToUser (channel: string, body: string): Promise<void> {
    const store = this.store
    if (store.publishes) {
      const envelope = this.codec.seal(channel, this.codec.toUser(body))
      const own: OwnRecord = { body, groups: null, senderKey: null, sender: null, excluded: false }
      return this.publishOwn(store as PublishingHistoryStore, channel, historyRecord(false, null, envelope), own).then(() => {})
    }
    const local = store as LocalHistoryStore
    const position = local.next(channel)
    const kept = withUserPosition(body, position)
    local.keep(channel, { offset: position.offset, time: local.clock(), body: kept, groups: null, senderKey: null, sender: null, excluded: false })
    this.delivery.deliverUser(channel, kept)
    return this.delivery.publish(channel, this.codec.seal(channel, this.codec.toUser(kept)))
  }

  /**
   * A publication of a store that publishes (`~offset~epoch~record`), as the entry every process delivers,
   * the sender's included; null when it is refused.
   */
  receive (channel: string, text: string): HistoryEntry | null {
    const positioned = parsePositioned(text)
    if (positioned === null) return null
    // Before the delivery: a member closed now does not move its position past the gap.
    if (!this.follows(channel, positioned.offset, positioned.epoch)) this.delivery.gap(channel)
    const key = channel + '\n' + positioned.record
    const own = this.ownRecords.get(key)
    if (own === undefined) return this.decodeRecord(channel, positioned.offset, positioned.epoch, 0, positioned.record, positioned.all)
    // Our own publication: known already, not parsed again.
    this.ownRecords.delete(key)
    const position = { offset: positioned.offset, epoch: positioned.epoch }
    const body = own.groups === null
      ? withUserPosition(own.body, position)
      : positioned.all !== null && positioned.all.length === own.groups.length
        ? withGroupPositions(own.body, own.groups, positioned.all)
        : withGroupPositions(own.body, [channel.slice(2)], [position])
    return { ...own, offset: position.offset, time: 0, body }
  }

  /** The stream's current position (creating its epoch on first use). */
  async position (channel: string): Promise<Position> {
    const position = await this.store.position(channel)
    this.seed(channel, position)
    return position
  }

  /** The entries after `since` in order, each checked like any envelope, or why they cannot all be given. */
  async read (channel: string, since: Position): Promise<ReadResult> {
    if (!this.store.publishes) return (this.store as LocalHistoryStore).read(channel, since)
    const result = await (this.store as PublishingHistoryStore).readRecords(channel, since)
    this.seed(channel, result.position)
    if (result.records === null) return { position: result.position, entries: null, lost: result.lost }
    const entries: HistoryEntry[] = []
    for (const kept of result.records) {
      const entry = this.decodeRecord(channel, kept.offset, kept.epoch, kept.time, kept.record, kept.all)
      // An entry that fails the checks (forged, or signed with a retired secret) is a hole: say so.
      if (entry === null || entry.offset !== since.offset + entries.length + 1) return { position: result.position, entries: null, lost: 'window_exceeded' }
      entries.push(entry)
    }
    return { position: result.position, entries, lost: null }
  }

  /**
   * Whether a publication at `offset` of `epoch` follows what `channel` received before (no gap), recording
   * it. One older than the last (a baseline seeded by a read, ahead of copies still on their way) is not a gap.
   */
  private follows (channel: string, offset: number, epoch: string): boolean {
    const last = this.received.get(channel)
    if (last === undefined) {
      if (this.delivery.listens(channel)) this.received.set(channel, { offset, epoch })
      return true
    }
    if (last.epoch === epoch) {
      if (offset <= last.offset) return true
      const next = offset === last.offset + 1
      last.offset = offset
      return next
    }
    last.epoch = epoch
    last.offset = offset
    return false
  }

  /**
   * A position read while this process listens on `channel` (its subscription is in place): the baseline
   * of the gap check when nothing was received yet, so a gap right after a socket joined is caught too.
   */
  private seed (channel: string, position: Position): void {
    if (this.store.publishes && !this.received.has(channel) && this.delivery.listens(channel)) {
      this.received.set(channel, { offset: position.offset, epoch: position.epoch })
    }
  }

  /** This process stopped listening on `channel`: what it receives later starts a new baseline. */
  forget (channel: string): void {
    this.received.delete(channel)
  }

  /**
   * After the layer resubscribed (a lost subscriber connection, a failover): whatever was published while
   * it was away is in the store but will never be received. Each stream's position is read, then a round
   * trip on the subscriber makes sure every publication kept before the read has arrived; a stream whose
   * position is still ahead of what was received (or under another epoch) had a gap. A failed read or round
   * trip counts as a gap: the members resume, and are told if the store is still away.
   */
  async verify (): Promise<void> {
    if (!this.store.publishes || this.received.size === 0) return
    const list = [...this.received.keys()]
    const positions = await Promise.all(list.map((channel) => this.store.position(channel).catch(() => null)))
    const settled = await this.store.barrier(list).then(() => true, () => false)
    for (let i = 0; i < list.length; i++) {
      const channel = list[i]!
      const last = this.received.get(channel)
      if (last === undefined) continue
      const position = positions[i]!
      if (settled && position !== null && position.epoch === last.epoch && position.offset <= last.offset) continue
      if (position !== null && settled) {
        last.epoch = position.epoch
        last.offset = position.offset
      }
      this.delivery.gap(channel)
    }
  }

  /** See {@link HistoryStore.barrier}. */
  barrier (channels: readonly string[]): Promise<void> {
    return this.store.barrier(channels)
  }

  close (): void {
    this.ownRecords.clear()
    this.received.clear()
    this.store.close()
  }

  /** Publishes `record`, remembering it when this process listens on `channel` (it will hear it back). */
  private publishOwn (store: PublishingHistoryStore, channel: string, record: string, own: OwnRecord): Promise<number> {
    if (!this.delivery.listens(channel)) return store.publish(channel, record)
    if (this.ownRecords.size >= MAX_OWN_RECORDS) this.ownRecords.clear()
    const key = channel + '\n' + record
    this.ownRecords.set(key, own)
    return store.publish(channel, record).catch((err: unknown) => {
      this.ownRecords.delete(key)
      throw err
    })
  }

  /**
   * A broadcast to several groups kept by one script (one redis-server): one publication per group, each
   * carrying every group's position, remembered like {@link publishOwn}'s.
   */
  private publishOwnMany (store: PublishingHistoryStore, list: readonly string[], identity: string | null, excluded: boolean,
    senderKey: string | null, body: string, own: OwnRecord): Promise<void> {
    const channels: string[] = []
    const records: string[] = []
    const keys: string[] = []
    for (let i = 0; i < list.length; i++) {
      const channel = 'g:' + list[i]
      const record = historyRecord(excluded, identity, this.codec.seal(channel, this.codec.broadcast(list, senderKey, body)))
      channels.push(channel)
      records.push(record)
      if (this.delivery.listens(channel)) {
        if (this.ownRecords.size >= MAX_OWN_RECORDS) this.ownRecords.clear()
        const key = channel + '\n' + record
        this.ownRecords.set(key, own)
        keys.push(key)
      }
    }
    return store.publishMany!(channels, records).then(() => {}, (err: unknown) => {
      for (const key of keys) this.ownRecords.delete(key)
      // One script keeps every group or none: each group's outcome is the script's.
      throw withGroups(err, list, () => outcomeOf(err))
    })
  }

  /** A kept record, checked like any envelope, as an entry with its position in the message; null if refused. */
  private decodeRecord (channel: string, offset: number, epoch: string, time: number, text: string,
    all: readonly Position[] | null): HistoryEntry | null {
    const record = parseRecord(text)
    if (record === null) return null
    const env = this.codec.open(channel, record.envelope)
    if (typeof env === 'string') return null
    if (env.k === 'b') {
      const group = channel.slice(2)
      if (!env.g.includes(group)) return null
      // Every target group's position when one script kept them all, and this one's is among them.
      const whole = all !== null && all.length === env.g.length && all[env.g.indexOf(group)]!.offset === offset &&
        all[env.g.indexOf(group)]!.epoch === epoch
      const body = whole ? withGroupPositions(env.m, env.g, all) : withGroupPositions(env.m, [group], [{ offset, epoch }])
      return { offset, time, body, groups: env.g, senderKey: env.s, sender: record.sender, excluded: record.excluded }
    }
    if (env.k === 'u') return { offset, time, body: withUserPosition(env.m, { offset, epoch }), groups: null, senderKey: null, sender: null, excluded: false }
    return null
  }
}
