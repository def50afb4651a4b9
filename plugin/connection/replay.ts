import type { FastifyRequest } from 'fastify'
import type { ChannelHub } from '../channels/hub'
import { channels, routeOf, type RecoveryEvent } from '../core/diagnostics'
import type { HistoryEntry, LossReason, Position } from '../channels/history/model'
import { framePositions } from '../channels/history/positions'
import { flaggedCopy } from '../channels/copies'
import { newRecoveryToken, readResume, tokenFits, type ResumeRequest } from './resume'
import type { SocketConnection } from './connection'
import type { ResumeBudget } from './resume-budget'

/**
 * Recovery of one connection on a route with history (docs/recovery.md), in two steps around the joins
 * of the handshake:
 *
 * 1. `startRecovery`, before the groups are joined: reads the resume parameters and gives the connection
 *    its recovery token (the one it resumes, or a new one).
 * 2. `finishRecovery`, once joined, before the socket opens: reads each stream after the client's
 *    position, then splices the replay into the connection's waiting output ahead of the live copies
 *    that arrived meanwhile, dropping those the replay covers, and adds `chanx_recovery` to the
 *    authentication message. Everything happens before the socket opens, so the client reads, in this
 *    order, the authentication message, the replay, then live messages: none lost, none twice.
 *
 * Groups that the handshake's `groups()` no longer returns are not read at all: a user who lost access
 * gets nothing replayed, and `not_allowed` for that group.
 */

export interface RecoveryStart {
  readonly resume: ResumeRequest | 'invalid' | null
}

/**
 * Null when the handshake carries a resume past the resume budget (resume-budget.ts): the handshake is then
 * refused 429 / 4429 before anything is read, and the client, which keeps its positions, retries later.
 */
export function startRecovery (connection: SocketConnection, request: FastifyRequest, budget: ResumeBudget): RecoveryStart | null {
  const resume = readResume(request.url)
  if (resume !== null && !budget.take(connection.userKey, request.ip)) return null
  const fits = resume !== null && resume !== 'invalid' && tokenFits(resume.token, connection.userKey)
  connection.recoveryToken = fits ? (resume as ResumeRequest).token : newRecoveryToken(connection.userKey)
  return { resume: resume === null || fits ? resume : 'invalid' }
}

/** The key of the user stream in the maps below (no group is named ''). */
const USER = ''

interface StreamOutcome {
  position: Position | null
  entries: readonly HistoryEntry[] | null
  lost: LossReason | null
}

async function readStream (hub: ChannelHub, channel: string, since: Position | undefined | null): Promise<StreamOutcome> {
  const store = hub.history!
  try {
    if (since === undefined || since === null) return { position: await store.position(channel), entries: null, lost: null }
    const result = await store.read(channel, since)
    return { position: result.position, entries: result.entries, lost: result.lost }
  } catch {
    // The store is down (Redis): the client is told, and keeps its position for the next try.
    return { position: null, entries: null, lost: 'unavailable' }
  }
}

function positionJson (position: Position): string {
  return '[' + position.offset + ',"' + position.epoch + '"]'
}

export async function finishRecovery (start: RecoveryStart, connection: SocketConnection, hub: ChannelHub,
  joined: readonly string[]): Promise<void> {
  const store = hub.history
  if (store === null || connection.released) return
  const groups = [...new Set(joined)]
  const resume = start.resume !== null && start.resume !== 'invalid' ? start.resume : null
  const allowed = new Set(groups)
  // The groups whose position the client sent and may still see: a broadcast to several groups is
  // replayed from the first of its groups among these (where the client had it live), never twice.
  const resumedGroups = resume === null ? [] : groups.filter((g) => resume.groups.has(g))
  const userKey = connection.userKey

  const reads: Promise<StreamOutcome>[] = []
  for (let i = 0; i < groups.length; i++) reads.push(readStream(hub, 'g:' + groups[i], resume?.groups.get(groups[i]!)))
  if (userKey !== null) reads.push(readStream(hub, 'u:' + userKey, resume?.user))
  const outcomes = await Promise.all(reads)
  // Publications made before the reads must have reached the waiting output before it is spliced (only
  // the live copies of streams that were read are compared with the replay).
  const read: string[] = []
  for (let i = 0; i < outcomes.length; i++) {
    if (outcomes[i]!.entries !== null) read.push(i < groups.length ? 'g:' + groups[i] : 'u:' + userKey)
  }
  // Without the barrier, an older live copy could still be on its way and arrive after the replay, twice:
  // those streams are reported unavailable instead (the client keeps its position and refetches).
  if (read.length > 0 && !await store.barrier(read).then(() => true, () => false)) {
    for (let i = 0; i < outcomes.length; i++) {
      if (outcomes[i]!.entries !== null) outcomes[i] = { position: outcomes[i]!.position, entries: null, lost: 'unavailable' }
    }
  }
  if (connection.released) return

  const failed: Array<[string, LossReason]> = []
  if (start.resume === 'invalid') failed.push([USER, 'invalid_token'])
  const covered = new Map<string, number>()
  const replayed: string[] = []
  let replay: HistoryEntry[] = []
  let positions = ''
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i]!
    const outcome = outcomes[i]!
    if (outcome.position !== null) positions += (positions === '' ? '' : ',') + JSON.stringify(group) + ':' + positionJson(outcome.position)
    if (outcome.lost !== null) failed.push([group, outcome.lost])
    if (outcome.entries === null) continue
    covered.set(group, outcome.position!.offset)
    if (outcome.entries.length > 0) replayed.push(group)
    for (const entry of outcome.entries) {
      if (entry.groups === null || firstOf(entry.groups, resumedGroups) === group) replay.push(entry)
    }
  }
  if (resume !== null) for (const group of resume.groups.keys()) if (!allowed.has(group)) failed.push([group, 'not_allowed'])
  let userPosition = ''
  if (userKey !== null) {
    const outcome = outcomes[groups.length]!
    if (outcome.position !== null) userPosition = positionJson(outcome.position)
    if (outcome.lost !== null) failed.push([USER, outcome.lost])
    if (outcome.entries !== null) {
      covered.set(USER, outcome.position!.offset)
      if (outcome.entries.length > 0) replayed.push(USER)
      replay = replay.concat(outcome.entries)
    }
  } else if (resume?.user != null) {
    failed.push([USER, 'not_allowed'])
  }
  // Stable: each stream stays in its order, streams interleave by the time their messages were kept.
  replay.sort(byTime)

  const identity = hub.identityOf(connection)
  let replayedCount = 0
  connection.editPending((pending, completion, limit) => {
    let out: string[] = []
    // Bytes, as the slow-reader cut counts them (socket.bufferedAmount), not UTF-16 code units: a replay of
    // multi-byte text measured in characters could fit here and then be cut after its first messages.
    // Each frame is measured once; the completion frame once for all.
    let size = 0
    const completionSize = completion === null ? 0 : Buffer.byteLength(completion)
    for (const entry of replay) {
      const frame = frameOf(entry, identity, userKey)
      if (frame === null) continue
      replayedCount++
      out.push(frame)
      size += Buffer.byteLength(frame)
      if (completion !== null && entry.groups !== null) {
        out.push(completion)
        size += completionSize
      }
    }
    if (size > limit) size = Infinity // no need to measure what waits: the replay does not fit anyway
    else for (let i = 0; i < pending.length; i++) size += Buffer.byteLength(pending[i]!)
    if (connection.message !== null && size <= limit) size += Buffer.byteLength(connection.message)
    if (size > limit) {
      // The replay would pass maxBufferedBytes and close the socket as a slow reader, on every retry: it is
      // not sent, and the client is told to refetch instead.
      out = []
      replayedCount = 0
      covered.clear()
      for (const stream of replayed) failed.push([stream, 'window_exceeded'])
    }
    for (let i = 0; i < pending.length; i++) {
      const frame = pending[i]!
      if (covered.size > 0 && isCovered(frame, covered, resumedGroups)) {
        if (completion !== null && pending[i + 1] === completion) i++
        continue
      }
      out.push(frame)
    }
    return out
  })

  if (connection.message !== null) {
    let info = '{"token":"' + connection.recoveryToken + '","positions":{' + positions + '}'
    if (userPosition !== '') info += ',"user_position":' + userPosition
    if (start.resume !== null) {
      info += ',"recovered":' + (failed.length === 0)
      if (failed.length > 0) {
        info += ',"reason":"' + failed[0]![1] + '"'
        const byGroup = failed.filter(([key]) => key !== USER)
        if (byGroup.length > 0) info += ',"failed":{' + byGroup.map(([g, r]) => JSON.stringify(g) + ':"' + r + '"').join(',') + '}'
        const user = failed.find(([key, reason]) => key === USER && reason !== 'invalid_token')
        if (user !== undefined) info += ',"user_failed":"' + user[1] + '"'
      }
    }
    connection.message = connection.message.slice(0, -1) + ',"chanx_recovery":' + info + '}}'
  }
  if (start.resume !== null && channels.recovery.hasSubscribers) {
    const request = connection.request
    const event: RecoveryEvent = {
      request, route: routeOf(request), recovered: failed.length === 0, reason: failed.length === 0 ? null : failed[0]![1], replayed: replayedCount
    }
    channels.recovery.publish(event)
  }
}

function firstOf (targets: readonly string[], among: readonly string[]): string | undefined {
  for (let i = 0; i < targets.length; i++) if (among.includes(targets[i]!)) return targets[i]
  return undefined
}

function byTime (a: HistoryEntry, b: HistoryEntry): number {
  return a.time - b.time
}

/** The copy of a kept message this connection gets, or null when its lineage sent it with excludeSelf. */
function frameOf (entry: HistoryEntry, identity: string, userKey: string | null): string | null {
  if (entry.groups === null) return entry.body
  const current = entry.sender === identity
  if (current && entry.excluded) return null
  return flaggedCopy(entry.body, entry.senderKey, userKey, current)
}

/**
 * A live copy the replay already holds: judged by the stream the replay takes it from, the first of its
 * positioned groups the client resumed (as `firstOf` picks it), or the user stream. A copy of a broadcast
 * to several groups carries every group's position, and the reads of those groups are not simultaneous: a
 * later group's read can cover it while the first group's read came before it, and then neither the replay
 * (which takes it from the first group only) nor this copy would deliver it.
 */
function isCovered (frame: string, covered: ReadonlyMap<string, number>, resumed: readonly string[]): boolean {
  const positions = framePositions(frame)
  if (positions === null) return false
  for (const [stream, offset] of positions) {
    if (stream !== USER && !resumed.includes(stream)) continue
    const upTo = covered.get(stream)
    return upTo !== undefined && offset <= upTo
  }
  return false
}
