import type { FaultClient } from './clients'
import type { Published } from './publisher'

/** The counts of one report row (one fault class). Deliveries count one message reaching one client once. */
export interface Row {
  published: number
  rejected: number
  /** Rejected publishes whose `err.groups` named groups that took them (a Cluster broadcast to several shards). */
  partial: number
  unknown: number
  live: number
  replayed: number
  /** Messages a client missed and was told about, by the reason of its stream at a resume in between. */
  reported: Record<string, number>
  /** Messages a client missed with no `recovered: false` for that stream in between (must be 0). */
  silent: number
  /** Second copies (must be 0). */
  duplicated: number
  /** Messages that came after a later one of the same stream (must be 0). */
  outOfOrder: number
  /** Deliveries of messages whose publish promise rejected (must be 0). */
  rejectedDelivered: number
  /** Reconnections that opened, and those of them that said `recovered: false`. */
  resumes: number
  notRecovered: number
  /** Close codes the clients saw, and how often. */
  closes: Record<string, number>
}

/** One violation, to reproduce and read: which client, stream and message, and what was wrong. */
export interface Violation { kind: 'silent' | 'duplicated' | 'outOfOrder' | 'rejectedDelivered', phase: string, client: number, stream: string, n: number, detail: string }

export function emptyRow (): Row {
  return { published: 0, rejected: 0, partial: 0, unknown: 0, live: 0, replayed: 0, reported: {}, silent: 0, duplicated: 0, outOfOrder: 0, rejectedDelivered: 0, resumes: 0, notRecovered: 0, closes: {} }
}

/** The reason `stream` was not recovered at this resume, or null. */
function failedReason (recovery: { failed: Readonly<Record<string, string>>, userFailed: string | null } | null, stream: string): string | null {
  if (recovery === null) return null
  if (stream.startsWith('u:')) return recovery.userFailed
  // A broadcast to several groups is reported by a failure of any of them.
  for (const group of stream.slice(2).split(',')) if (recovery.failed[group] !== undefined) return recovery.failed[group]
  return null
}

/**
 * The delivery contract of docs/recovery.md, checked for every client and every stream it is in, with
 * messages known by the number their publisher gave them (not by chanx_pos):
 * - each message at most once (`duplicated`), in order (`outOfOrder`; a message whose publish rejected has
 *   no order to keep, and counts only as `rejectedDelivered`);
 * - a message whose publish began after the client first opened and resolved, and that the client never
 *   got, is `reported` when an open between the delivery before it and the delivery after it (or the end),
 *   and after the publish began, said `recovered: false` for that stream; else it is `silent`;
 * - a message whose publish rejected is never delivered (`rejectedDelivered`), except through a group its
 *   rejection's `err.groups` said was published (`partial`: the caller was told; such a message may arrive,
 *   at most once, and is not required: a client in the other groups only does not get it).
 * A message whose outcome is unknown may arrive or not, but at most once and in order. "Replayed" is a
 * delivery on a reconnection of a message published before that connection opened; the rest are "live".
 */
export function check (clients: FaultClient[], records: Map<string, Published[]>, phases: string[]): { rows: Map<string, Row>, violations: Violation[] } {
  const rows = new Map<string, Row>(phases.map((p) => [p, emptyRow()]))
  const row = (phase: string): Row => rows.get(phase) ?? rows.set(phase, emptyRow()).get(phase)!
  const violations: Violation[] = []
  for (const [, list] of records) {
    for (const record of list) {
      const r = row(record.phase)
      r.published++
      if (record.outcome === 'rejected') r.rejected++
      else if (record.outcome === 'partial') { r.rejected++; r.partial++ } else if (record.outcome !== 'ok') r.unknown++
    }
  }
  for (const client of clients) {
    const opens = new Map<number, number>()
    for (const seen of client.seen) {
      if (seen.kind === 'open') {
        opens.set(seen.connection, seen.at)
        if (seen.connection === 0) continue
        const r = row(seen.phase)
        r.resumes++
        if (seen.recovery?.recovered === false) r.notRecovered++
      } else if (seen.kind === 'close') {
        const r = row(seen.phase)
        r.closes[seen.code] = (r.closes[seen.code] ?? 0) + 1
      }
    }
    for (const stream of client.streams) {
      const list = records.get(stream) ?? []
      // Where each number was first delivered, in the client's timeline.
      const at = new Map<number, number>()
      let highest = 0
      for (let i = 0; i < client.seen.length; i++) {
        const seen = client.seen[i]!
        if (seen.kind !== 'message' || seen.stream !== stream) continue
        const record = list[seen.n - 1]
        const r = row(record?.phase ?? 'start')
        const flag = (kind: Violation['kind'], detail: string): void => {
          violations.push({ kind, phase: record?.phase ?? 'start', client: client.id, stream, n: seen.n, detail })
        }
        if (at.has(seen.n)) { r.duplicated++; flag('duplicated', `second copy on connection ${seen.connection}`); continue }
        at.set(seen.n, i)
        // A rejected publish has no place in its stream's order (the next one was sent once it had
        // failed, maybe through another process): it counts as delivered-after-rejection only.
        if (record?.outcome === 'rejected') { r.rejectedDelivered++; flag('rejectedDelivered', `its publish rejected with ${record.code}`) } else if (record?.outcome === 'partial') {
          if (!seen.groups.some((group) => record.published!.includes(group))) {
            r.rejectedDelivered++
            flag('rejectedDelivered', `its publish rejected with ${record.code}, published only to ${record.published!.join(',')}, and it came through ${seen.groups.join(',') || 'no group'}`)
          }
        } else if (seen.n < highest) { r.outOfOrder++; flag('outOfOrder', `after ${highest}`) } else highest = seen.n
        const opened = opens.get(seen.connection) ?? Infinity
        if (seen.connection > 0 && record !== undefined && record.end <= opened) r.replayed++
        else r.live++
      }
      // Sorted delivered numbers, with the latest timeline index among those below and the earliest among those above.
      const delivered = [...at.keys()].sort((a, b) => a - b)
      const latestBelow = new Array<number>(delivered.length)
      const earliestAbove = new Array<number>(delivered.length)
      for (let k = 0, m = -1; k < delivered.length; k++) latestBelow[k] = m = Math.max(m, at.get(delivered[k]!)!)
      for (let k = delivered.length - 1, m = client.seen.length; k >= 0; k--) earliestAbove[k] = m = Math.min(m, at.get(delivered[k]!)!)
      for (let n = 1; n <= list.length; n++) {
        const record = list[n - 1]!
        if (record.outcome !== 'ok' || record.start < client.firstOpen || at.has(n)) continue
        // The deliveries on either side of the missing message, and what the client was told in between.
        let lo = 0
        let hi = delivered.length
        while (lo < hi) { const mid = (lo + hi) >> 1; if (delivered[mid]! < n) lo = mid + 1; else hi = mid }
        const before = lo > 0 ? latestBelow[lo - 1]! : -1
        const after = lo < delivered.length ? earliestAbove[lo]! : client.seen.length
        let reason: string | null = null
        for (let i = before + 1; i < after && reason === null; i++) {
          const seen = client.seen[i]!
          // Only a resume after the publish began can speak for it: a later gap is a live one.
          if (seen.kind === 'open' && seen.at >= record.start) reason = failedReason(seen.recovery, stream)
        }
        const r = row(record.phase)
        if (reason !== null) r.reported[reason] = (r.reported[reason] ?? 0) + 1
        else {
          r.silent++
          violations.push({ kind: 'silent', phase: record.phase, client: client.id, stream, n, detail: `between deliveries at ${before} and ${after} of ${client.seen.length}, no open said ${stream} failed` })
        }
      }
    }
  }
  return { rows, violations }
}
