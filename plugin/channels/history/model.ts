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
  /**
   * How long a stream's position (epoch and last offset) is kept after its last use (ms), at least
   * `maxAge`: a client that missed nothing resumes `recovered: true` after an idle this long, instead of
   * hearing `epoch_changed` once the messages themselves expired (Centrifugo's history_meta_ttl).
   * Default: the larger of a day and `maxAge`.
   */
  readonly metaTtl?: number
}

/** One day: a stream's position outlives its messages (docs/recovery.md, "Options"). */
export const DEFAULT_META_TTL = 86_400_000

export const DEFAULT_HISTORY: HistoryLimits = { size: 1000, maxAge: 120_000, metaTtl: DEFAULT_META_TTL }

export function metaTtlOf (limits: HistoryLimits): number {
  return limits.metaTtl ?? Math.max(DEFAULT_META_TTL, limits.maxAge)
}

/** The longest metaTtl taken: a year. */
const MAX_META_TTL = 365 * 86_400_000

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
  /** The entries after `since` in order, or why they cannot all be given. */
  read (channel: string, since: Position): Promise<ReadResult>
  /** The time of the next entry: strictly increasing, so a replay of several streams keeps the order they were sent in. */
  clock (): number
}

/** What an epoch looks like: it goes into frames as it is, so one read from Redis is checked against this. */
export const EPOCH = /^[0-9a-z]{1,32}$/

export function newEpoch (): string {
  return randomBytes(6).toString('hex')
}

/** `history` as an option: true (defaults), false, or `{ size, maxAge, metaTtl }`. */
export function resolveHistoryOption (value: unknown, where: string): HistoryLimits | null {
  if (value === undefined || value === false) return null
  if (value === true) return DEFAULT_HISTORY
  if (!isRecord(value)) throw new InvalidOptionError(`${where} must be true, false or { size, maxAge, metaTtl }`)
  for (const key of Object.keys(value)) {
    if (key !== 'size' && key !== 'maxAge' && key !== 'metaTtl') {
      throw new InvalidOptionError(`${where} has an unknown key "${key}"; expected size, maxAge, metaTtl`)
    }
  }
  const size = value.size ?? DEFAULT_HISTORY.size
  const maxAge = value.maxAge ?? DEFAULT_HISTORY.maxAge
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > 1_000_000) {
    throw new InvalidOptionError(`${where}.size must be a whole number of messages from 1 to 1000000`)
  }
  if (typeof maxAge !== 'number' || !Number.isInteger(maxAge) || maxAge < 1000 || maxAge > 2 ** 31 - 1) {
    throw new InvalidOptionError(`${where}.maxAge must be a whole number of milliseconds, at least 1000`)
  }
  const metaTtl = value.metaTtl ?? Math.max(DEFAULT_META_TTL, maxAge)
  if (typeof metaTtl !== 'number' || !Number.isInteger(metaTtl) || metaTtl < maxAge || metaTtl > MAX_META_TTL) {
    throw new InvalidOptionError(`${where}.metaTtl must be a whole number of milliseconds, at least maxAge (${maxAge}) and at most a year`)
  }
  return { size, maxAge, metaTtl }
}

// ---------------------------------------------------------------- kept by the store that publishes (Redis)

/** One kept record of a store that publishes, as it was kept: not yet checked (channels/history/hub-history.ts does). */
export interface KeptRecord {
  readonly offset: number
  readonly epoch: string
  /** When it was kept (epoch ms, the store's clock). */
  readonly time: number
  readonly record: string
  /** The position in every target group of a broadcast kept by one script for all of them; else null. */
  readonly all: readonly Position[] | null
}

export type RecordReadResult =
  | { readonly position: Position, readonly records: readonly KeptRecord[], readonly lost: null }
  | { readonly position: Position, readonly records: null, readonly lost: 'window_exceeded' | 'epoch_changed' }

/** A store that assigns positions as it publishes (Redis: one script keeps and publishes atomically). */
export interface PublishingHistoryStore extends HistoryStore {
  readonly publishes: true
  /**
   * Keeps `record` as the next entry of `channel` and publishes it, positioned, to every process;
   * resolves with the number of processes that received it.
   */
  publish (channel: string, record: string): Promise<number>
  /**
   * One redis-server only, undefined on a Cluster (whose groups' keys live in different slots): keeps and
   * publishes a broadcast to several groups in one script, `records[i]` on `channels[i]`, each publication
   * carrying the positions of all of them, so a copy delivered through one group moves the client's
   * position in every target group it tracks.
   */
  readonly publishMany: ((channels: readonly string[], records: readonly string[]) => Promise<number>) | undefined
  /** The records after `since` in order, unchecked, or why they cannot all be given. */
  readRecords (channel: string, since: Position): Promise<RecordReadResult>
}
