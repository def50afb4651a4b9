// Enforces the coverage floor of plugin/ after `tap` ran (tap 21 reports coverage but has no thresholds):
// at least 95% of lines and 90% of branches, summed over every file under plugin/ that the tests loaded.
import { readFileSync } from 'node:fs'
import { relative, resolve } from 'node:path'

const LINES = 95
const BRANCHES = 90
const root = resolve(import.meta.dirname, '..')
const summaryFile = resolve(root, '.tap/report/coverage-summary.json')

let summary
try {
  summary = JSON.parse(readFileSync(summaryFile, 'utf8'))
} catch (err) {
  console.error(`coverage: cannot read ${relative(root, summaryFile)} (${err.message}); run tap first`)
  process.exit(1)
}

const totals = { lines: { covered: 0, total: 0 }, branches: { covered: 0, total: 0 } }
const files = []
for (const [file, entry] of Object.entries(summary)) {
  if (file === 'total') continue
  const path = relative(root, file)
  if (!path.startsWith('plugin/')) continue
  files.push(path)
  for (const kind of ['lines', 'branches']) {
    totals[kind].covered += entry[kind].covered
    totals[kind].total += entry[kind].total
  }
}
if (files.length === 0) {
  console.error('coverage: no file under plugin/ was covered; is coverage on?')
  process.exit(1)
}
const pct = (kind) => totals[kind].total === 0 ? 100 : 100 * totals[kind].covered / totals[kind].total
const lines = pct('lines')
const branches = pct('branches')
const ok = lines >= LINES && branches >= BRANCHES
console.log(`coverage of plugin/ (${files.length} files): lines ${lines.toFixed(2)}% (floor ${LINES}%), branches ${branches.toFixed(2)}% (floor ${BRANCHES}%): ${ok ? 'ok' : 'BELOW THE FLOOR'}`)
process.exit(ok ? 0 : 1)
