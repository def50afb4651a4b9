import { randomBytes } from 'node:crypto'
import { InvalidOptionError } from '../../core/errors'
import { isRecord } from '../../core/validate'

/**
 * The model of recoverable history (DESIGN "Recovery after a reconnect", Centrifugo's offsets and epochs).
 *
 * Every hub channel with history (`g:<group>`, `u:<userKey>`) is a stream: each message published to it
 * gets the next offset (1, 2, 3…) and is kept while the stream holds at most `size` messages none older
 * than `maxAge`. The stream's epoch names one life of it: when the history it indexes is lost (a
 * restart, an expired stream, a Redis that lost its keys) the stream starts again under a new epoch, so a
 * client's old position can never be mistaken for a position in the new one.
 *
 * On the wire (docs/protocol.md) a group broadcast carries `"chanx_pos":{"<group>":[offset,"epoch"],…}`
 * and a user message `"chanx_upos":[offset,"epoch"]`, appended to the message once per broadcast, before
 * `is_mine`/`is_current`.
 */

export interface HistoryLimits {
  /** Messages kept per stream. */
  readonly size: number
  /** How long a message is kept (ms). */
  readonly maxAge: number
}

export const DEFAULT_HISTORY: HistoryLimits = { size: 1000, maxAge: 120_000 }

export interface Position {
  readonly offset: number
  readonly epoch: string
}

/** One kept message of one stream. */
export interface HistoryEntry {
  readonly offset: number
  /** When it was kept (epoch ms): orders a replay that merges several streams. */
  readonly time: number
  /** The message as it was sent, positions included, without `is_mine`/`is_current`. */
  readonly body: string
  /** The target groups of a broadcast; null on a user stream. */
  readonly groups: readonly string[] | null
  /** The sender's userKey (for `is_mine`). */
  readonly senderKey: string | null
  /** The sending connection's identity (its recovery token, else origin:id): it is `is_current` for it. */
  readonly sender: string | null
  /** The sending connection did not get it (excludeSelf), so a resume of that connection does not either. */
  readonly excluded: boolean
}

/** Why a stream (or the whole resume) could not be recovered. */
export type LossReason = 'window_exceeded' | 'epoch_changed' | 'not_allowed' | 'invalid_token' | 'unavailable'

export type ReadResult =
  | { readonly position: Position, readonly entries: readonly HistoryEntry[], readonly lost: null }
  | { readonly position: Position, readonly entries: null, readonly lost: 'window_exceeded' | 'epoch_changed' }

/** What the hub and the replay need of a history, whether kept in this process or in Redis. */
export interface HistoryStore {
  readonly limits: HistoryLimits
  /**
   * false: the hub assigns positions itself (`next`, `keep`) and delivers locally at once. true: the store
   * assigns them while it publishes (Redis), and every process, the sender's included, delivers on receipt.
   */
  readonly publishes: boolean
  /** The stream's current position (creating its epoch on first use). */
  position (channel: string): Promise<Position>
  /** The entries after `since` in order, or why they cannot all be given. */
  read (channel: string, since: Position): Promise<ReadResult>
  /**
   * Waits until every publication on `channels` made before the last `read` has reached this process's
   * hub (on a Cluster, a round trip on the connection subscribed to each channel's shard).
   */
  barrier (channels: readonly string[]): Promise<void>
  close (): void
}

/** A store that lives in the hub's own process: positions are assigned synchronously. */
export interface LocalHistoryStore extends HistoryStore {
  readonly publishes: false
  /** Reserves the next position of `channel`. */
  next (channel: string): Position
  /** Keeps the entry reserved by `next`. */
  keep (channel: string, entry: HistoryEntry): void
  /** The time of the next entry: strictly increasing, so a replay of several streams keeps the order they were sent in. */
  clock (): number
}

const EPOCH = /^[0-9a-z]{1,32}$/

export function newEpoch (): string {
  return randomBytes(6).toString('hex')
}

/** `history` as an option: true (defaults), false, or `{ size, maxAge }`. */
export function resolveHistoryOption (value: unknown, where: string): HistoryLimits | null {
  if (value === undefined || value === false) return null
  if (value === true) return DEFAULT_HISTORY
  if (!isRecord(value)) throw new InvalidOptionError(`${where} must be true, false or { size, maxAge }`)
  for (const key of Object.keys(value)) {
    if (key !== 'size' && key !== 'maxAge') throw new InvalidOptionError(`${where} has an unknown key "${key}"; expected size, maxAge`)
  }
  const size = value.size ?? DEFAULT_HISTORY.size
  const maxAge = value.maxAge ?? DEFAULT_HISTORY.maxAge
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > 1_000_000) {
    throw new InvalidOptionError(`${where}.size must be a whole number of messages from 1 to 1000000`)
  }
  if (typeof maxAge !== 'number' || !Number.isInteger(maxAge) || maxAge < 1000 || maxAge > 2 ** 31 - 1) {
    throw new InvalidOptionError(`${where}.maxAge must be a whole number of milliseconds, at least 1000`)
  }
  return { size, maxAge }
}

// ---------------------------------------------------------------- positions on the wire

function positionText (offset: number, epoch: string): string {
  return '[' + offset + ',"' + epoch + '"]'
}

/** `body` with `"chanx_pos":{…}` appended: the position of the message in each of `groups`. */
export function withGroupPositions (body: string, groups: readonly string[], positions: readonly Position[]): string {
  let field = '"chanx_pos":{'
  for (let i = 0; i < groups.length; i++) {
    if (i > 0) field += ','
    field += JSON.stringify(groups[i]) + ':' + positionText(positions[i]!.offset, positions[i]!.epoch)
  }
  return appendField(body, field + '}')
}

/** `body` with `"chanx_upos":[offset,"epoch"]` appended: its position in the user's stream. */
export function withUserPosition (body: string, position: Position): string {
  return appendField(body, '"chanx_upos":' + positionText(position.offset, position.epoch))
}

function appendField (body: string, field: string): string {
  return body.length === 2 ? '{' + field + '}' : body.slice(0, -1) + ',' + field + '}'
}

const GROUP_FIELD = ',"chanx_pos":'
const USER_FIELD = '"chanx_upos":'

/**
 * The positions a frame (a broadcast copy or a user message, flags included) carries: `group -> offset`,
 * with `''` for the user stream; null when it carries none. Only the handshake's live frames are read so.
 */
export function framePositions (frame: string): Map<string, number> | null {
  const user = frame.lastIndexOf(USER_FIELD)
  if (user !== -1 && frame.endsWith(']}')) {
    const offset = Number(frame.slice(user + USER_FIELD.length + 1, frame.indexOf(',', user)))
    return Number.isSafeInteger(offset) ? new Map([['', offset]]) : null
  }
  const at = frame.lastIndexOf(GROUP_FIELD)
  if (at === -1) return null
  const end = frame.lastIndexOf(',"is_mine":')
  try {
    const parsed = JSON.parse(frame.slice(at + GROUP_FIELD.length, end > at ? end : -1)) as Record<string, [number, string]>
    const out = new Map<string, number>()
    for (const group of Object.keys(parsed)) out.set(group, parsed[group]![0])
    return out
  } catch {
    return null
  }
}

// ---------------------------------------------------------------- in process

/** One stream's kept entries: a ring of at most `size`, trimmed by age as it is used. */
class Ring {
  readonly epoch = newEpoch()
  offset = 0
  entries: HistoryEntry[] = []
  start = 0
  lastUse = Date.now()

  trim (now: number, limits: HistoryLimits): void {
    const entries = this.entries
    let start = this.start
    if (entries.length - start > limits.size) start = entries.length - limits.size
    const oldest = now - limits.maxAge
    while (start < entries.length && entries[start]!.time < oldest) start++
    if (start === entries.length) {
      this.entries = []
      this.start = 0
    } else if (start > limits.size) {
      this.entries = entries.slice(start)
      this.start = 0
    } else {
      this.start = start
    }
  }
}

/**
 * History in this process: a ring per stream. A stream left with no entry and unused for `maxAge` is
 * dropped, and made again under a new epoch: a client resuming it then hears `epoch_changed`.
 */
export class MemoryHistory implements LocalHistoryStore {
  readonly publishes = false
  private readonly rings = new Map<string, Ring>()
  private readonly timer: NodeJS.Timeout
  private last = 0

  constructor (readonly limits: HistoryLimits) {
    this.timer = setInterval(() => this.sweep(Date.now()), Math.min(limits.maxAge, 60_000))
    this.timer.unref()
  }

  private ring (channel: string): Ring {
    let ring = this.rings.get(channel)
    if (ring === undefined) {
      ring = new Ring()
      this.rings.set(channel, ring)
    }
    return ring
  }

  next (channel: string): Position {
    const ring = this.ring(channel)
    return { offset: ++ring.offset, epoch: ring.epoch }
  }

  clock (): number {
    const now = Date.now()
    this.last = now > this.last ? now : this.last + 0.001
    return this.last
  }

  keep (channel: string, entry: HistoryEntry): void {
    const ring = this.ring(channel)
    ring.entries.push(entry)
    ring.lastUse = entry.time
    if (ring.entries.length - ring.start > this.limits.size) ring.trim(entry.time, this.limits)
  }

  async position (channel: string): Promise<Position> {
    const ring = this.ring(channel)
    ring.lastUse = Date.now()
    return { offset: ring.offset, epoch: ring.epoch }
  }

  async read (channel: string, since: Position): Promise<ReadResult> {
    const ring = this.ring(channel)
    const now = Date.now()
    ring.lastUse = now
    ring.trim(now, this.limits)
    const position = { offset: ring.offset, epoch: ring.epoch }
    if (since.epoch !== ring.epoch || since.offset > ring.offset) return { position, entries: null, lost: 'epoch_changed' }
    const missed = ring.offset - since.offset
    const kept = ring.entries.length - ring.start
    if (missed > kept) return { position, entries: null, lost: 'window_exceeded' }
    return { position, entries: ring.entries.slice(ring.entries.length - missed), lost: null }
  }

  async barrier (): Promise<void> {}

  private sweep (now: number): void {
    for (const [channel, ring] of this.rings) {
      ring.trim(now, this.limits)
      if (ring.entries.length === 0 && now - ring.lastUse >= this.limits.maxAge) this.rings.delete(channel)
    }
  }

  close (): void {
    clearInterval(this.timer)
    this.rings.clear()
  }
}

// ---------------------------------------------------------------- kept by the store that publishes (Redis)

/** A store that assigns positions as it publishes (Redis: one script keeps and publishes atomically). */
export interface PublishingHistoryStore extends HistoryStore {
  readonly publishes: true
  /**
   * Keeps `record` as the next entry of `channel` and publishes it, positioned, to every process;
   * resolves with the number of processes that received it.
   */
  publish (channel: string, record: string): Promise<number>
  /** How a kept record becomes an entry (the hub's checks, signature included); set by the hub. */
  decoder: ((channel: string, offset: number, epoch: string, time: number, record: string) => HistoryEntry | null) | null
}

/**
 * A record: `<excluded 0|1>~<sender identity>~<envelope>`. Published positioned: `~<offset>~<epoch>~<record>`.
 * Identities and epochs never hold `~`, and an envelope starts with `{`, so the first `~`s split it.
 */
export function historyRecord (excluded: boolean, sender: string | null, envelope: string): string {
  return (excluded ? '1~' : '0~') + (sender ?? '') + '~' + envelope
}

export interface ParsedRecord {
  readonly excluded: boolean
  readonly sender: string | null
  readonly envelope: string
}

export function parseRecord (record: string): ParsedRecord | null {
  const flag = record.charCodeAt(0)
  if ((flag !== 48 && flag !== 49) || record.charCodeAt(1) !== 126) return null
  const end = record.indexOf('~', 2)
  if (end === -1 || end > 200) return null
  return { excluded: flag === 49, sender: end === 2 ? null : record.slice(2, end), envelope: record.slice(end + 1) }
}

/** `~<offset>~<epoch>~<record>` split, or null. */
export function parsePositioned (text: string): { offset: number, epoch: string, record: string } | null {
  const a = text.indexOf('~', 1)
  const b = a === -1 ? -1 : text.indexOf('~', a + 1)
  if (text.charCodeAt(0) !== 126 || b === -1 || b - a > 65) return null
  const offset = Number(text.slice(1, a))
  const epoch = text.slice(a + 1, b)
  // Whoever can publish on Redis wrote this, and the epoch goes into frames as it is.
  if (!Number.isSafeInteger(offset) || offset < 1 || !EPOCH.test(epoch)) return null
  return { offset, epoch, record: text.slice(b + 1) }
}
