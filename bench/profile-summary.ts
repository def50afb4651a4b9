/**
 * Where a server spent its CPU: `node --import tsx bench/profile-summary.ts <file.cpuprofile> [plugin]` prints
 * self time by function (file:line) and, with `plugin`, total (inclusive) time of the functions in plugin/.
 * Profiles come from `BENCH_PROF=1` runs of bench/run.ts (bench/profiles/).
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'

interface Node { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
const [file, mode] = process.argv.slice(2) as [string, string | undefined]
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[], samples: number[], timeDeltas: number[] }
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
/** PROF_LAST_MS: only the samples of the profile's last milliseconds (a bench server's measurement window). */
const lastMs = Number(process.env.PROF_LAST_MS ?? 0)
const elapsed = profile.timeDeltas.reduce((a, b) => a + b, 0)
const from = lastMs > 0 ? elapsed - lastMs * 1000 : -Infinity
const self = new Map<number, number>()
for (let i = 0, at = 0; i < profile.samples.length; i++) {
  at += profile.timeDeltas[i] ?? 0
  if (at < from) continue
  self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const total = [...self.values()].reduce((a, b) => a + b, 0)
// Paths relative to this checkout (a worktree's too), so `plugin` finds its functions wherever it runs.
const root = resolve(__dirname, '..') + '/'
const label = (n: Node): string => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^file:\/\//, '').replace(root, '')}:${n.callFrame.lineNumber + 1}`
const busy = total - [...self.entries()].filter(([id]) => byId.get(id)!.callFrame.functionName === '(idle)').reduce((a, [, t]) => a + t, 0)

const flat = new Map<string, number>()
const inclusive = new Map<string, number>()
for (const [id, t] of self) {
  flat.set(label(byId.get(id)!), (flat.get(label(byId.get(id)!)) ?? 0) + t)
  // Inclusive time, counted once per sample even under recursion.
  const seen = new Set<string>()
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur)!)
    if (seen.has(l)) continue
    seen.add(l)
    inclusive.set(l, (inclusive.get(l) ?? 0) + t)
  }
}
const pct = (t: number): string => (100 * t / busy).toFixed(1).padStart(5) + '%'
console.log(`# ${file}: ${(busy / 1000).toFixed(0)} ms busy of ${(total / 1000).toFixed(0)} ms`)
console.log('# self time')
for (const [l, t] of [...flat].filter(([l]) => !l.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(pct(t), l)
if (mode === 'plugin') {
  console.log('# inclusive time, plugin/ functions')
  for (const [l, t] of [...inclusive].filter(([l]) => l.includes(' plugin/')).sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(pct(t), l)
}
