// `npm pack` runs `prepack` (build, then `strip`) and `postpack` (`restore`). The tarball's package.json
// leaves out `prepare`: a tarball already holds dist/, and npm warns about any `prepare` its allowScripts
// does not cover ("install scripts not yet covered"), though it never runs it for a tarball. The
// repository keeps `prepare`, which git installs need (npm clones, then runs only `prepare`).
// The same precedent: pinst, which strips husky's postinstall from what is published.
import { readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const manifest = join(root, 'package.json')
const saved = join(root, 'package.json.prepack')

if (process.argv[2] === 'strip') {
  const text = readFileSync(manifest, 'utf8')
  writeFileSync(saved, text)
  const data = JSON.parse(text)
  delete data.scripts.prepare
  writeFileSync(manifest, JSON.stringify(data, null, 2) + '\n')
} else if (process.argv[2] === 'restore') {
  if (existsSync(saved)) renameSync(saved, manifest)
} else {
  console.error('usage: node scripts/pack-manifest.mjs strip|restore')
  process.exit(1)
}
