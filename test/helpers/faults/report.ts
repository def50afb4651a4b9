import type { Row, Violation } from './oracle'

/**
 * The report: one row per fault class (messages are counted under the class of the last fault before
 * their publish), as a Markdown table that docs/recovery.md can hold as is.
 */
export function table (rows: Map<string, Row>, faults: Map<string, number>): string {
  const header = ['fault class', 'faults', 'published', 'rejected', 'unknown', 'delivered live', 'replayed',
    'reported lost (by reason)', 'silently lost', 'duplicated', 'out of order', 'rejected, delivered']
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`]
  const total: Row = { published: 0, rejected: 0, unknown: 0, live: 0, replayed: 0, reported: {}, silent: 0, duplicated: 0, outOfOrder: 0, rejectedDelivered: 0 }
  let faultCount = 0
  const line = (name: string, count: number, row: Row): string => {
    const reported = Object.entries(row.reported).map(([reason, n]) => `${reason} ${n}`).join(', ') || '0'
    return `| ${name} | ${count} | ${row.published} | ${row.rejected} | ${row.unknown} | ${row.live} | ${row.replayed} | ${reported} | **${row.silent}** | **${row.duplicated}** | **${row.outOfOrder}** | **${row.rejectedDelivered}** |`
  }
  for (const [name, row] of rows) {
    if (row.published === 0 && !faults.has(name)) continue
    const count = faults.get(name) ?? 0
    faultCount += count
    lines.push(line(name, count, row))
    total.published += row.published
    total.rejected += row.rejected
    total.unknown += row.unknown
    total.live += row.live
    total.replayed += row.replayed
    for (const [reason, n] of Object.entries(row.reported)) total.reported[reason] = (total.reported[reason] ?? 0) + n
    total.silent += row.silent
    total.duplicated += row.duplicated
    total.outOfOrder += row.outOfOrder
    total.rejectedDelivered += row.rejectedDelivered
  }
  lines.push(line('**all**', faultCount, total))
  return lines.join('\n')
}

/** The first few violations of each kind, one a line, to start a diagnosis from. */
export function describe (violations: Violation[], perKind = 5): string {
  const shown = new Map<string, number>()
  const out: string[] = []
  for (const v of violations) {
    const n = shown.get(v.kind) ?? 0
    shown.set(v.kind, n + 1)
    if (n < perKind) out.push(`${v.kind}: client ${v.client}, ${v.stream} #${v.n} (after ${v.phase}): ${v.detail}`)
  }
  for (const [kind, n] of shown) if (n > perKind) out.push(`${kind}: … ${n - perKind} more`)
  return out.join('\n')
}
