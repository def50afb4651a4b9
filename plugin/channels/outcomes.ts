import type { GroupOutcome, PublishOutcome } from './errors'

/**
 * What a failed publication tells its caller, attached to the rejection: `err.outcome` (channels/errors.ts,
 * PublishOutcome) and, for a broadcast to several groups, `err.groups` (GroupOutcome per group).
 */

export function withOutcome<E extends Error> (err: E, outcome: PublishOutcome): E & { outcome: PublishOutcome } {
  return Object.assign(err, { outcome })
}

/**
 * One publication per group (a Redis Cluster, or history off), settled together: when any rejected, the
 * first rejection, with `err.groups` saying per group `'published'` (kept and delivered), `'not_sent'` or
 * `'unknown'`, so the caller knows which groups a retry would reach a second time.
 */
export function settleGroups (list: readonly string[], pending: ReadonlyArray<Promise<unknown>>): Promise<void> {
  return Promise.allSettled(pending).then((results) => {
    let first: unknown = null
    for (let i = 0; i < results.length && first === null; i++) if (results[i]!.status === 'rejected') first = (results[i] as PromiseRejectedResult).reason
    if (first === null) return
    throw withGroups(first, list, (i) => results[i]!.status === 'fulfilled' ? 'published' : outcomeOf((results[i] as PromiseRejectedResult).reason))
  })
}

/** `err` with `groups`: every group's outcome (`outcome(i)` for the i-th of `list`). */
export function withGroups (err: unknown, list: readonly string[], outcome: (i: number) => GroupOutcome): unknown {
  if (err === null || typeof err !== 'object') return err
  const groups: Record<string, GroupOutcome> = {}
  for (let i = 0; i < list.length; i++) groups[list[i]!] = outcome(i)
  return Object.assign(err, { groups })
}

/** A rejection's `outcome`, `'unknown'` when it does not say. */
export function outcomeOf (err: unknown): PublishOutcome {
  return (err as { outcome?: unknown } | null)?.outcome === 'not_sent' ? 'not_sent' : 'unknown'
}
