/**
 * Which objects a server holds, by constructor: `node bench/heap-summary.ts a.heapsnapshot [b.heapsnapshot]`
 * prints the top entries of a (or of a minus b) by retained self size, with counts. Snapshots come from a
 * memory run with BENCH_HEAP=1 (bench/profiles/).
 */
import { readFileSync } from 'node:fs'

interface Entry { count: number, size: number }

function summarize (file: string): Map<string, Entry> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[], node_types: [string[]], edge_fields: string[], edge_types: [string[]] } }
    nodes: number[],
    edges: number[],
    strings: string[]
  }
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const out = new Map<string, Entry>()
  // Arrays (backing stores) are attributed to their holder: "(array) <holder>.<property>".
  const edgeWidth = snap.snapshot.meta.edge_fields.length
  const edgeTypes = snap.snapshot.meta.edge_types[0]
  const edgeCountAt = fields.indexOf('edge_count')
  const nodeName = (i: number): string => {
    const type = types[snap.nodes[i + typeAt]!]!
    return type === 'object' || type === 'closure' ? snap.strings[snap.nodes[i + nameAt]!]! : `(${type})`
  }
  let edge = 0
  for (let i = 0; i < snap.nodes.length; i += width) {
    const count = snap.nodes[i + edgeCountAt]!
    for (let k = 0; k < count; k++, edge += edgeWidth) {
      const edgeType = edgeTypes[snap.edges[edge]!]!
      if (edgeType === 'weak' || edgeType === 'shortcut') continue
      const to = snap.edges[edge + 2]!
      if (types[snap.nodes[to + typeAt]!] !== 'array') continue
      const label = edgeType === 'element' || edgeType === 'hidden' ? `[${edgeType}]` : snap.strings[snap.edges[edge + 1]!]!
      const key = `(array) ${types[snap.nodes[i + typeAt]!]!}:${nodeName(i)}.${label}`
      const e = out.get(key) ?? { count: 0, size: 0 }
      e.count++
      e.size += snap.nodes[to + sizeAt]!
      out.set(key, e)
    }
  }
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!]!
    let name = type === 'object' || type === 'closure' ? snap.strings[snap.nodes[i + nameAt]!]! : `(${type})`
    if (type === 'closure') name = `closure ${name}`
    const e = out.get(name) ?? { count: 0, size: 0 }
    e.count++
    e.size += snap.nodes[i + sizeAt]!
    out.set(name, e)
  }
  return out
}

const [a, b] = process.argv.slice(2) as [string, string | undefined]
const left = summarize(a)
const right = b === undefined ? new Map<string, Entry>() : summarize(b)
const rows = [...new Set([...left.keys(), ...right.keys()])].map((name) => {
  const l = left.get(name) ?? { count: 0, size: 0 }
  const r = right.get(name) ?? { count: 0, size: 0 }
  return { name, count: l.count - r.count, size: l.size - r.size }
}).sort((x, y) => y.size - x.size)
console.log('bytes\tcount\tname')
for (const row of rows.slice(0, Number(process.env.TOP ?? 30))) console.log(`${row.size}\t${row.count}\t${row.name.slice(0, 100)}`)
