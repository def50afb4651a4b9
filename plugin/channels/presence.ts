import { InvalidOptionError } from '../core/errors'
import { channels, type PresenceEvent } from '../core/diagnostics'
import type { ChannelHub } from './hub'
import type { ChannelLayer } from './layer'
import { checkName } from './arguments'
import { ChannelLayerClosedError } from './errors'
import type { RedisLayerAccess } from './redis/layer'
import { MAX_CHANNEL_NAME, signPresence, verifyPresence } from './envelope'

/**
 * Presence: who is in a group across every process. Each process keeps its own members of a group in
 * one field (named by its hub's origin) of a Redis hash beside the group's channel,
 * `<prefix>{g:<group>}:presence`, as `<expiry ms>|{"c":<connections>,"u":[<user keys>]}`. It rewrites
 * the field when its members change and every ttl/3 (the heartbeat); a reader ignores and deletes fields
 * past their expiry, so a process that dies without cleaning up stops counting within `ttl`. Expiries
 * are taken from Redis's clock (TIME in the scripts), so the processes' clocks need not agree. With a
 * channel secret the JSON is stored behind its HMAC over the hash and the field (channels/envelope.ts); a
 * reader checks that and every field's type, and drops (and counts) an entry that fails.
 */

/** A group's presence across every process. */
export interface PresenceInfo {
  /** Open connections in the group. */
  connections: number
  /** The distinct user keys among them (anonymous connections are counted, not listed), sorted. */
  users: string[]
}

export interface PresenceOptions {
  /**
   * How long a process's entry outlives its last heartbeat, in ms (default 30 000, at least 1000). A
   * process that dies without cleaning up is counted for at most this long; the heartbeat runs every ttl/3.
   */
  ttl?: number
}

/** The plugin option: `true` (default ttl) or `{ ttl }`; unset or `false`: off. */
export type PresenceOption = boolean | PresenceOptions

export const DEFAULT_PRESENCE_TTL = 30_000
/** How long one presence read or write may take before it fails (or, for a write, is retried by the heartbeat). */
const COMMAND_TIMEOUT = 3000

/** The resolved option: null when presence is off. */
export function resolvePresenceOption (value: unknown): { ttl: number } | null {
  if (value === undefined || value === false) return null
  if (value === true) return { ttl: DEFAULT_PRESENCE_TTL }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('option presence must be true, false or { ttl }')
  }
  for (const key of Object.keys(value)) {
    if (key !== 'ttl') throw new InvalidOptionError(`option presence has an unknown key "${key}"; allowed: ttl`)
  }
  const ttl = (value as PresenceOptions).ttl ?? DEFAULT_PRESENCE_TTL
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1000) {
    throw new InvalidOptionError('option presence.ttl must be an integer number of milliseconds, at least 1000')
  }
  return { ttl }
}

// KEYS[1] the hash; ARGV field, payload ('' deletes the field), ttl. The key itself expires a ttl after
// its last write, so a group nobody writes to any more leaves nothing behind.
const WRITE = `
if ARGV[2] == '' then return redis.call('HDEL', KEYS[1], ARGV[1]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', now + ttl) .. '|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1`

// KEYS[1] the hash. Returns [field, payload, …] of the live fields and deletes the expired ones.
const READ = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local value = all[i + 1]
  local sep = string.find(value, '|', 1, true)
  local expires = sep and tonumber(string.sub(value, 1, sep - 1))
  if expires and expires > now then
    out[#out + 1] = all[i]
    out[#out + 1] = string.sub(value, sep + 1)
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out`

interface ScriptClient {
  eval (script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
}

/**
 * One script on the layer's publisher, through its readiness-checked path: while the publisher is not ready
 * it fails at once (FST_CHANX_CHANNEL_LAYER_NOT_READY) and is never sent, so nothing waits in ioredis's
 * offline queue to run after an outage; it settles within COMMAND_TIMEOUT.
 */
function script (redis: RedisLayerAccess, what: string, source: string, key: string, ...args: Array<string | number>): Promise<unknown> {
  return redis.command(what, (client) => (client as unknown as ScriptClient).eval(source, 1, key, ...args), COMMAND_TIMEOUT)
}

function publishWrite (group: string, error: Error | null): void {
  const event: PresenceEvent = { group, ok: error === null, error }
  channels.presence.publish(event)
}

/** The layer's Redis, when it is a Redis layer. */
export function redisOf (layer: ChannelLayer): RedisLayerAccess | null {
  const access = (layer as { redis?: RedisLayerAccess }).redis
  return access !== undefined && typeof access === 'object' && typeof access.name === 'function' ? access : null
}

/**
 * One process's presence: it mirrors the hub's local membership into Redis (when the layer is Redis)
 * and answers presence(group). On any other layer it answers for this process only.
 */
export class Presence {
  private readonly hub: ChannelHub
  private readonly redis: RedisLayerAccess | null
  private readonly ttl: number
  /** Groups whose entry must be rewritten at the next flush. */
  private readonly dirty = new Set<string>()
  /** Groups that have (or may have, after a failed delete) an entry of this process in Redis. */
  private readonly written = new Set<string>()
  private readonly heartbeat: NodeJS.Timeout | null = null
  /** The flush of the dirty groups, scheduled for the next turn of the event loop. */
  private scheduled: NodeJS.Immediate | null = null
  /** Writes sent and not settled yet: close waits for them before it deletes. */
  private readonly inFlight = new Set<Promise<void>>()
  private closed = false
  /** The channel secret's keys: the first signs each entry, any verifies one; none: entries are unsigned. */
  private readonly keys: readonly Buffer[]

  /**
   * Failed writes, and entries refused on read, are counted in the hub's failure log. `keys`: the plugin's
   * `channelSecret` (channels/secret.ts), to sign and check every entry.
   */
  constructor (hub: ChannelHub, options: { ttl: number, keys?: readonly Buffer[] }) {
    this.hub = hub
    this.redis = redisOf(hub.layer)
    this.ttl = options.ttl
    this.keys = options.keys ?? []
    if (this.redis !== null) {
      hub.onMembershipChange((group) => this.changed(group))
      this.heartbeat = setInterval(() => this.beat(), Math.floor(this.ttl / 3))
      this.heartbeat.unref()
    }
  }

  /** The group's connections and users in every process (this one counted from its live state). */
  async get (group: string): Promise<PresenceInfo> {
    checkName(group, 'group')
    if (this.closed) throw new ChannelLayerClosedError()
    let connections = 0
    const users = new Set<string>()
    for (const member of this.hub.localMembers(group)) {
      connections++
      if (member.userKey !== null) users.add(member.userKey)
    }
    if (this.redis !== null) {
      const key = this.key(group)
      const reply = await script(this.redis, `reading the presence of "${group}"`, READ, key)
      if (!Array.isArray(reply)) throw new TypeError(`the presence of "${group}" was read as a ${typeof reply}`)
      for (let i = 0; i + 1 < reply.length; i += 2) {
        const field: unknown = reply[i]
        if (field === this.hub.origin) continue
        const entry = typeof field === 'string' && typeof reply[i + 1] === 'string' ? this.open(key, field, reply[i + 1]) : 'not a string'
        if (typeof entry === 'string') {
          // Written by someone else than a hub sharing the secret: dropped and counted, as a malformed envelope is.
          this.hub.failures.record('presence entry check', new Error(`fastify-chanx: a presence entry of "${group}" was refused: ${entry}`))
          continue
        }
        connections += entry.c
        for (const user of entry.u) users.add(user)
      }
    }
    return { connections, users: [...users].sort() }
  }

  /**
   * A stored entry, checked in full: its signature when a secret is set, then its JSON and every field's
   * type (`c` a count, `u` at most `c` distinct user keys); or the reason it is refused.
   */
  private open (key: string, field: string, value: string): { c: number, u: string[] } | string {
    let json: string | null = value
    if (this.keys.length > 0) {
      json = verifyPresence(this.keys, key, field, value)
      if (json === null) return 'unsigned or badly signed'
    }
    let entry: unknown
    try {
      entry = JSON.parse(json)
    } catch {
      return 'not JSON'
    }
    if (typeof entry !== 'object' || entry === null) return 'not an object'
    const { c, u } = entry as { c?: unknown, u?: unknown }
    if (typeof c !== 'number' || !Number.isSafeInteger(c) || c < 1) return 'bad connection count'
    if (!Array.isArray(u) || u.length > c) return 'bad user list'
    for (let i = 0; i < u.length; i++) {
      const user: unknown = u[i]
      if (typeof user !== 'string' || user.length === 0 || user.length > MAX_CHANNEL_NAME) return 'bad user key'
    }
    return { c, u }
  }

  private key (group: string): string {
    return this.redis!.name('g:' + group, 'presence')
  }

  private changed (group: string): void {
    if (this.closed) return
    this.dirty.add(group)
    if (this.scheduled !== null) return
    // A burst of joins and leaves (a page of sockets opening at once) is written once per group.
    this.scheduled = setImmediate(() => {
      this.scheduled = null
      const groups = [...this.dirty]
      this.dirty.clear()
      for (const g of groups) this.send(g)
    })
  }

  private beat (): void {
    if (this.closed) return
    for (const group of new Set([...this.written, ...this.dirty])) this.send(group)
  }

  /** Start a write and keep it in `inFlight` until it settles (it never rejects). */
  private send (group: string): void {
    if (this.closed) return
    const writing = this.write(group)
    this.inFlight.add(writing)
    void writing.finally(() => this.inFlight.delete(writing))
  }

  /** This process's entry for `group`, as its members are now; a failure is retried by the heartbeat. */
  private async write (group: string): Promise<void> {
    let connections = 0
    const users = new Set<string>()
    for (const member of this.hub.localMembers(group)) {
      connections++
      if (member.userKey !== null) users.add(member.userKey)
    }
    const key = this.key(group)
    let payload = connections === 0 ? '' : JSON.stringify({ c: connections, u: [...users] })
    if (payload !== '') {
      this.written.add(group)
      if (this.keys.length > 0) payload = signPresence(this.keys[0]!, key, this.hub.origin, payload) + payload
    }
    try {
      await script(this.redis!, `writing the presence of "${group}"`, WRITE, key, this.hub.origin, payload, this.ttl)
      if (payload === '' && this.hub.localMembers(group).size === 0) this.written.delete(group)
      if (channels.presence.hasSubscribers) publishWrite(group, null)
    } catch (err) {
      if (channels.presence.hasSubscribers) publishWrite(group, err as Error)
      if (this.closed) return
      this.dirty.add(group)
      // Counted, not logged one by one: during an outage every group fails on every heartbeat. The heartbeat retries.
      this.hub.failures.record('presence write', err)
    }
  }

  /**
   * Stop the heartbeat, cancel a scheduled flush, wait for the writes in flight (each bounded by
   * COMMAND_TIMEOUT), then delete this process's entries (best effort: they expire anyway). Nothing writes
   * after this: a flush that had been scheduled would otherwise write an entry back after its deletion, and
   * the stopped process would count as present for `ttl`.
   */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.heartbeat !== null) clearInterval(this.heartbeat)
    if (this.scheduled !== null) clearImmediate(this.scheduled)
    this.scheduled = null
    if (this.redis === null) return
    this.hub.onMembershipChange(null)
    await Promise.all(this.inFlight)
    const redis = this.redis
    await Promise.all([...new Set([...this.written, ...this.dirty])].map((group) =>
      script(redis, 'removing presence', WRITE, this.key(group), this.hub.origin, '', this.ttl).catch(() => {})))
  }
}
