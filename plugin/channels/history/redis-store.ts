import { createHash } from 'node:crypto'
import { metaTtlOf, newEpoch, type HistoryLimits, type KeptRecord, type Position, type PublishingHistoryStore, type RecordReadResult } from './model'
import { parsePositioned } from './positions'
import { ChannelLayerPublishError, ChannelLayerTimeoutError } from '../errors'
import { withOutcome } from '../outcomes'
import { redisName } from '../redis/names'

/**
 * History over Redis: per hub channel X, a hash `{X}:meta` (`e` epoch, `o` last offset) and a Stream
 * `{X}:history` (one entry per message, field `p` = the positioned publication), both named by
 * redisName so that they share the hash slot of X's pub/sub channel (docs/recovery.md).
 *
 * One script keeps and publishes: it takes the next offset, appends the entry, trims the stream by count
 * (`MAXLEN ~`) and age (`MINID ~`), and publishes the entry, all atomically, so offsets and the order in
 * which every process receives publications agree. The hash outlives the Stream (`metaTtl` against
 * `maxAge`); keys lost (a Redis restart, a stream idle for `metaTtl`) come back under a new epoch: a client
 * holding the old one hears `epoch_changed`.
 */

/** What the Redis layer lends (RedisLayer.historyAccess). */
export interface RedisHistoryAccess {
  readonly client: unknown
  readonly prefix: string
  /** `PUBLISH`, or `SPUBLISH` on a Cluster with sharded pub/sub: the scripts take it as an argument. */
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH'
  readonly publishTimeout: number
  pubsub (channel: string): string
  /** A round trip on the subscriber connection(s) that receive `channels`. */
  barrier (channels: readonly string[]): Promise<unknown>
  /**
   * The layer's one readiness-checked path (RedisLayer.command): `send` runs only while the publisher is
   * ready, else FST_CHANX_CHANNEL_LAYER_NOT_READY at once; bounded by `timeout` (FST_CHANX_CHANNEL_LAYER_TIMEOUT).
   */
  command<T> (what: string, send: () => Promise<T>, timeout: number): Promise<T>
}

interface ScriptClient {
  evalsha (sha: string, keys: number, ...args: Array<string | number>): Promise<unknown>
  eval (script: string, keys: number, ...args: Array<string | number>): Promise<unknown>
  time (): Promise<[string, string]>
}

/**
 * A script that starts this close to the caller's deadline does nothing: its answer could arrive after the
 * caller was told "timed out" (docs/recovery.md, "Scope and limits"). Also covers the uncertainty of the
 * clock offset (half the round trip of its measurement, added on top).
 */
const DEADLINE_MARGIN = 100
/** How often the offset between this process's clock and Redis's is measured again. */
const CLOCK_REFRESH = 60_000
/** What a script answers when it started after its deadline. */
const LATE = 'CHANX_LATE'

// A meta hash made here starts a new epoch; a stream left from an older one is dropped with it.
const ENSURE_EPOCH = `
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 'o', 0)
end
`

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// The last ARGV is the caller's deadline on Redis's clock: a script that starts after it (it waited in a
// hung server, or in a queue) changes nothing, since its caller was already told it failed.
const DEADLINE = `
if now > tonumber(ARGV[#ARGV]) then return redis.error_reply('${LATE}') end
`

// KEYS: meta, stream. ARGV: new epoch, record, size, maxAge, pub/sub channel, publish command, metaTtl, deadline.
// The meta hash outlives the stream (metaTtl against maxAge): a stream idle longer than maxAge keeps its
// epoch and offset, so a client that missed nothing resumes recovered, one that missed expired messages
// hears window_exceeded.
const PUBLISH = NOW + DEADLINE + ENSURE_EPOCH + `
local o = redis.call('HINCRBY', KEYS[1], 'o', 1)
local payload = '~' .. o .. '~' .. e .. '~' .. ARGV[2]
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'p', payload)
redis.call('XTRIM', KEYS[2], 'MINID', '~', now - tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return redis.call(ARGV[6], ARGV[5], payload)
`

// KEYS: meta and stream of each target group in turn. ARGV: size, maxAge, publish command, metaTtl, then
// per group (i from 1) new epoch ARGV[2+3i], pub/sub channel ARGV[3+3i], record ARGV[4+3i]; the deadline
// last. One redis-server only (a Cluster refuses keys of several slots in one script). Every publication
// carries every group's position (`P<o>,<e>;…`, channels/history/positions.ts).
const PUBLISH_MANY = NOW + DEADLINE + `
local n = #KEYS / 2
local os, es = {}, {}
for i = 1, n do
  local e = redis.call('HGET', KEYS[2 * i - 1], 'e')
  if not e then
    e = ARGV[2 + 3 * i]
    redis.call('DEL', KEYS[2 * i])
    redis.call('HSET', KEYS[2 * i - 1], 'e', e, 'o', 0)
  end
  es[i] = e
  os[i] = redis.call('HINCRBY', KEYS[2 * i - 1], 'o', 1)
end
local all = {}
for i = 1, n do all[i] = os[i] .. ',' .. es[i] end
all = 'P' .. table.concat(all, ';') .. '~'
local receivers = 0
for i = 1, n do
  local payload = '~' .. os[i] .. '~' .. es[i] .. '~' .. all .. ARGV[4 + 3 * i]
  redis.call('XADD', KEYS[2 * i], 'MAXLEN', '~', ARGV[1], '*', 'p', payload)
  redis.call('XTRIM', KEYS[2 * i], 'MINID', '~', now - tonumber(ARGV[2]))
  redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2 * i], ARGV[2])
  receivers = receivers + redis.call(ARGV[3], ARGV[3 + 3 * i], payload)
end
return receivers
`

// The newest entries of a reply, cut to at most `limit` bytes of payload (at least one entry): what one
// command hands back stays small, so Redis serves other clients between the chunks of a long read.
const FIT = `
local function fit (entries, limit)
  local bytes = 0
  for i = 1, #entries do
    bytes = bytes + #entries[i][2][2]
    if bytes > limit and i > 1 then
      local kept = {}
      for j = 1, i - 1 do kept[j] = entries[j] end
      return kept
    end
  end
  return entries
end
`

// KEYS: meta, stream. ARGV: new epoch, since offset ('' for the position only), since epoch, size, metaTtl,
// chunk count, chunk bytes, deadline. Returns { epoch, offset, loss, entries, now }: loss is '' or why the
// missed entries cannot all be there; entries are the newest of those missed, newest first, one chunk of
// them (RedisHistory.readRecords reads the rest and checks the whole).
const READ = NOW + DEADLINE + ENSURE_EPOCH + FIT + `
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local o = tonumber(redis.call('HGET', KEYS[1], 'o'))
if ARGV[2] == '' then return { e, o, '', {}, now } end
local since = tonumber(ARGV[2])
if e ~= ARGV[3] or since > o then return { e, o, 'epoch_changed', {}, now } end
local missed = o - since
if missed == 0 then return { e, o, '', {}, now } end
if missed > tonumber(ARGV[4]) then return { e, o, 'window_exceeded', {}, now } end
local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', math.min(missed, tonumber(ARGV[6])))
return { e, o, '', fit(entries, tonumber(ARGV[7])), now }
`

// KEYS: stream. ARGV: the id read last (the next chunk is older), chunk count, chunk bytes, deadline.
const READ_MORE = NOW + DEADLINE + FIT + `
return fit(redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[1], '-', 'COUNT', ARGV[2]), tonumber(ARGV[3]))
`

/**
 * A long read is taken in chunks of at most this many entries and bytes, one command each: a resume of
 * many groups of 1,000 kept messages would otherwise hold Redis for tens of milliseconds in one go, in
 * front of every other process's commands (docs/recovery.md, "The resume budget").
 */
const READ_CHUNK = 100
const READ_CHUNK_BYTES = 64 * 1024
/** Chunks of history reads this process has in flight at once; the others wait their turn here. */
const READS_IN_FLIGHT = 2

/**
 * A timeout whose script did nothing and never runs later: it started after its deadline, or was never sent
 * (too little of the caller's time left once Redis's clock was measured).
 */
function notSent (what: string, ms: number): Error {
  return withOutcome(new ChannelLayerTimeoutError(what, ms), 'not_sent')
}

/**
 * A failed publication as its caller gets it, with `err.outcome` (channels/errors.ts): the layer's own errors
 * as they are (not ready, closed: never sent; a timeout of the command path: sent, outcome unknown), an
 * error reply (Redis did not run it) or a broken connection (it may have run) as PUBLISH_FAILED.
 */
function publishFailure (channels: string, err: Error & { code?: string, outcome?: unknown }): Error {
  if (err?.outcome !== undefined) return err
  if (typeof err?.code === 'string' && err.code.startsWith('FST_CHANX_CHANNEL_LAYER_')) {
    return withOutcome(err, err.code === 'FST_CHANX_CHANNEL_LAYER_TIMEOUT' ? 'unknown' : 'not_sent')
  }
  return withOutcome(new ChannelLayerPublishError(channels, err?.message ?? String(err), { cause: err }), err?.name === 'ReplyError' ? 'not_sent' : 'unknown')
}

function sha1 (text: string): string {
  return createHash('sha1').update(text).digest('hex')
}

const PUBLISH_SHA = sha1(PUBLISH)
const READ_SHA = sha1(READ)
const READ_MORE_SHA = sha1(READ_MORE)
const PUBLISH_MANY_SHA = sha1(PUBLISH_MANY)

type RawEntry = [string, string[]]
/** epoch, offset, loss, entries (newest first), Redis's clock (ms). */
type ReadReply = [string, number, string, RawEntry[], number]

/** The time part (ms) of a stream entry's id. */
function timeOf (id: string): number {
  return Number(id.slice(0, id.indexOf('-')))
}

export class RedisHistory implements PublishingHistoryStore {
  readonly publishes = true
  private readonly client: ScriptClient
  readonly publishMany: PublishingHistoryStore['publishMany']
  private clock: Promise<number> | null = null
  /** The last measured offset, once known. */
  private clockValue: number | null = null
  private clockAt = 0
  private clockError = 0
  private readonly margin: number
  /** History-read chunks in flight, and the reads waiting for a turn. */
  private readsInFlight = 0
  private readonly waitingReads: Array<() => void> = []

  constructor (private readonly access: RedisHistoryAccess, readonly limits: HistoryLimits) {
    this.client = access.client as ScriptClient
    // A short publishTimeout keeps three quarters of itself for the script.
    this.margin = Math.min(DEADLINE_MARGIN, access.publishTimeout / 4)
    // A Cluster cannot run one script over the keys of several slots: each group is its own publication.
    this.publishMany = access.publishCommand === 'PUBLISH' ? this.publishAll.bind(this) : undefined
  }

  /**
   * Every command on the publisher goes through the layer's readiness-checked path: it fails at once
   * unless the connection is 'ready' (a Cluster's offline queue would otherwise run it after recovery, long
   * after its caller was told it failed), bounded by publishTimeout. The script gets the caller's deadline
   * on Redis's clock, so one that starts late does nothing. EVALSHA, loading the script on NOSCRIPT.
   */
  private run (script: string, sha: string, args: Array<string | number>, what: string, keys = 2): Promise<unknown> {
    const ms = this.access.publishTimeout
    const started = Date.now()
    return this.access.command(what, () => {
      // The measured offset is used as it is (no extra promise per broadcast) while it is fresh.
      if (this.clockValue !== null && started - this.clockAt < CLOCK_REFRESH) return this.exec(script, sha, args, started + ms + this.clockValue, what, keys)
      return this.redisClock().then((offset) => {
        if (ms - (Date.now() - started) <= this.margin) throw notSent(what, ms)
        return this.exec(script, sha, args, started + ms + offset, what, keys)
      })
    }, ms)
  }

  /** The script, with `deadline` (Redis's clock) less the margins as its last argument. */
  private async exec (script: string, sha: string, args: Array<string | number>, deadline: number, what: string, keys = 2): Promise<unknown> {
    const last = Math.floor(deadline - this.margin - this.clockError)
    try {
      return await this.client.evalsha(sha, keys, ...args, last)
    } catch (err) {
      const message = String((err as Error)?.message)
      if (message.startsWith(LATE)) throw notSent(what, this.access.publishTimeout)
      if (!message.startsWith('NOSCRIPT')) throw err
      return await this.client.eval(script, keys, ...args, last).catch((err: Error) => {
        throw String(err?.message).startsWith(LATE) ? notSent(what, this.access.publishTimeout) : err
      })
    }
  }

  /** Redis's clock minus this process's (ms), measured with TIME at first use and again every minute. */
  private redisClock (): Promise<number> {
    const now = Date.now()
    if (this.clock !== null && now - this.clockAt < CLOCK_REFRESH) return this.clock
    this.clockAt = now
    const measuring = this.client.time().then(([seconds, micros]) => {
      const after = Date.now()
      const redisNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
      // The reply was made somewhere within the round trip: half of it is the measure's uncertainty.
      this.clockError = Math.ceil((after - now) / 2)
      this.clockValue = redisNow - (now + after) / 2
      return this.clockValue
    })
    const previous = this.clock
    // A refresh that fails keeps the previous measure; a first one that fails is tried again next time.
    this.clock = previous === null
      ? measuring.catch((err: unknown) => { this.clock = null; this.clockAt = 0; throw err })
      : measuring.catch(() => previous)
    return previous ?? this.clock
  }

  private keys (channel: string): [string, string] {
    return [redisName(this.access.prefix, channel, 'meta'), redisName(this.access.prefix, channel, 'history')]
  }

  publish (channel: string, record: string): Promise<number> {
    return this.run(PUBLISH, PUBLISH_SHA, [...this.keys(channel), newEpoch(), record, this.limits.size, this.limits.maxAge,
      this.access.pubsub(channel), this.access.publishCommand, metaTtlOf(this.limits)], `publishing to "${channel}"`).then(
      (receivers) => Number(receivers),
      (err: Error) => { throw publishFailure(`"${channel}"`, err) })
  }

  private publishAll (channels: readonly string[], records: readonly string[]): Promise<number> {
    const keys: string[] = []
    const args: Array<string | number> = [this.limits.size, this.limits.maxAge, this.access.publishCommand, metaTtlOf(this.limits)]
    for (let i = 0; i < channels.length; i++) {
      keys.push(...this.keys(channels[i]!))
      args.push(newEpoch(), this.access.pubsub(channels[i]!), records[i]!)
    }
    const what = `publishing to "${channels.join('", "')}"`
    return this.run(PUBLISH_MANY, PUBLISH_MANY_SHA, [...keys, ...args], what, keys.length).then(
      (receivers) => Number(receivers),
      (err: Error) => { throw publishFailure(`"${channels.join('", "')}"`, err) })
  }

  async position (channel: string): Promise<Position> {
    const [e, o] = await this.run(READ, READ_SHA, [...this.keys(channel), newEpoch(), '', '', this.limits.size, metaTtlOf(this.limits),
      0, 0], `reading the position of "${channel}"`) as ReadReply
    return { offset: Number(o), epoch: String(e) }
  }

  /**
   * The records after `since`, read newest first in chunks (READ_CHUNK, READ_CHUNK_BYTES), at most
   * READS_IN_FLIGHT chunks of this process at a time. Entries trimmed between two chunks, or older than
   * `maxAge` on Redis's clock at the first chunk, make it window_exceeded.
   */
  async readRecords (channel: string, since: Position): Promise<RecordReadResult> {
    const what = `reading the history of "${channel}"`
    const [meta, stream] = this.keys(channel)
    const [e, o, loss, first, now] = await this.inTurn(() => this.run(READ, READ_SHA, [meta, stream, newEpoch(), String(since.offset), since.epoch,
      this.limits.size, metaTtlOf(this.limits), READ_CHUNK, READ_CHUNK_BYTES], what)) as ReadReply
    const position = { offset: Number(o), epoch: String(e) }
    if (loss === 'epoch_changed' || loss === 'window_exceeded') return { position, records: null, lost: loss }
    const missed = position.offset - since.offset
    const raw: RawEntry[] = first
    while (raw.length < missed) {
      if (raw.length === 0) return { position, records: null, lost: 'window_exceeded' }
      const more = await this.inTurn(() => this.run(READ_MORE, READ_MORE_SHA, [stream, raw[raw.length - 1]![0],
        Math.min(READ_CHUNK, missed - raw.length), READ_CHUNK_BYTES], what, 1)) as RawEntry[]
      if (more.length === 0) return { position, records: null, lost: 'window_exceeded' }
      for (let i = 0; i < more.length; i++) raw.push(more[i]!)
    }
    if (raw.length > 0 && timeOf(raw[raw.length - 1]![0]) < Number(now) - this.limits.maxAge) {
      return { position, records: null, lost: 'window_exceeded' }
    }
    const records: KeptRecord[] = []
    for (let i = raw.length - 1; i >= 0; i--) {
      const [id, fields] = raw[i]!
      const positioned = parsePositioned(fields[1] ?? '')
      // An entry that is not a positioned publication is a hole: say so.
      if (positioned === null) return { position, records: null, lost: 'window_exceeded' }
      records.push({ offset: positioned.offset, epoch: positioned.epoch, time: timeOf(id), record: positioned.record, all: positioned.all })
    }
    return { position, records, lost: null }
  }

  /** Runs `read` once fewer than READS_IN_FLIGHT history-read chunks of this process are in flight. */
  private async inTurn<T> (read: () => Promise<T>): Promise<T> {
    if (this.readsInFlight >= READS_IN_FLIGHT) await new Promise<void>((resolve) => this.waitingReads.push(resolve))
    else this.readsInFlight++
    try {
      return await read()
    } finally {
      const next = this.waitingReads.shift()
      if (next !== undefined) next()
      else this.readsInFlight--
    }
  }

  async barrier (channels: readonly string[]): Promise<void> {
    await this.access.barrier(channels)
  }

  close (): void {}
}
