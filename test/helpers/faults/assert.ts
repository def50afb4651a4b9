import type { Test } from 'tap'
import type { FaultRunResult } from './harness'

/** The invariants every row must meet: 0 of each. */
export const INVARIANTS = ['silent', 'duplicated', 'outOfOrder', 'rejectedDelivered'] as const
export type Invariant = typeof INVARIANTS[number]

/** Known defects, per fault class and invariant: the assertion is a tap `todo` naming the defect. */
export type KnownDefects = Record<string, Partial<Record<Invariant, string>>>

/** Every row of the run meets every invariant, except where a known defect is named (then a todo). */
export function assertContract (t: Test, result: FaultRunResult, known: KnownDefects): void {
  t.comment(`\n${result.table}`)
  if (result.summary !== '') t.comment(result.summary)
  for (const [name, row] of result.rows) {
    if (row.published === 0) continue
    for (const invariant of INVARIANTS) {
      const todo = known[name]?.[invariant]
      t.equal(row[invariant], 0, `${name}: ${invariant} is 0`, todo === undefined ? {} : { todo })
    }
  }
}
