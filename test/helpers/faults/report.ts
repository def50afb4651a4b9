import { emptyRow, type Row, type Violation } from './oracle'

/**
 * The report: one row per fault class (messages are counted under the class of the last fault before
 * their publish), as a Markdown table that docs/recovery.md can hold as is.
 */
export function table (rows: Map<string, Row>, faults: Map<string, number>): string {
  const header = ['fault class', 'faults', 'published', 'rejected', 'unknown', 'delivered live', 'replayed',
    'reported lost (by reason)', 'silently lost', 'duplicated', 'out of order', 'rejected, delivered',
    'resumes (not recovered)', 'close codes']
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`]
  const total = emptyRow()
  let faultCount = 0
  const line = (name: string, count: number, row: Row): string => {
    const reported = Object.entries(row.reported).map(([reason, n]) => `${reason} ${n}`).join(', ') || '0'
    const closes = Object.entries(row.closes).map(([code, n]) => `${code}×${n}`).join(', ') || '-'
    const rejected = row.partial > 0 ? `${row.rejected} (${row.partial} partly published)` : String(row.rejected)
    return `| ${name} | ${count} | ${row.published} | ${rejected} | ${row.unknown} | ${row.live} | ${row.replayed} | ${reported} | **${row.silent}** | **${row.duplicated}** | **${row.outOfOrder}** | **${row.rejectedDelivered}** | ${row.resumes} (${row.notRecovered}) | ${closes} |`
  }
  for (const [name, row] of rows) {
    if (row.published === 0 && !faults.has(name)) continue
    const count = faults.get(name) ?? 0
    faultCount += count
    lines.push(line(name, count, row))
    total.published += row.published
    total.rejected += row.rejected
    total.partial += row.partial
    total.unknown += row.unknown
    total.live += row.live
    total.replayed += row.replayed
    for (const [reason, n] of Object.entries(row.reported)) total.reported[reason] = (total.reported[reason] ?? 0) + n
    total.silent += row.silent
    total.duplicated += row.duplicated
    total.outOfOrder += row.outOfOrder
    total.rejectedDelivered += row.rejectedDelivered
    total.resumes += row.resumes
    total.notRecovered += row.notRecovered
    for (const [code, n] of Object.entries(row.closes)) total.closes[code] = (total.closes[code] ?? 0) + n
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
