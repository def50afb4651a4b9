import { test } from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'

// docs/architecture.md: the folders of plugin/ form layers; a folder imports only the folders below it.
const ORDER = ['core', 'auth', 'messages', 'channels', 'connection', 'handshake', 'asyncapi']
const ROOT = path.join(__dirname, '..', 'plugin')

function allowed (from: string, to: string): boolean {
  if (from === to) return true
  if (from === 'client') return false
  if (to === 'client') return from === '.' || from === 'esm'
  if (from === 'esm') return to === '.'
  if (from === '.') return ORDER.includes(to)
  const a = ORDER.indexOf(from)
  const b = ORDER.indexOf(to)
  return a >= 0 && b >= 0 && b < a
}

function sources (dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name)
    if (statSync(full).isDirectory()) sources(full, out)
    else if (/\.m?ts$/.test(name) && !name.endsWith('.d.ts')) out.push(full)
  }
  return out
}

const folderOf = (file: string): string => {
  const parts = path.relative(ROOT, file).split(path.sep)
  return parts.length > 1 ? parts[0]! : '.'
}

test('every import in plugin/, type-only included, follows the layering of docs/architecture.md', async (t) => {
  const broken: string[] = []
  let imports = 0
  for (const file of sources(ROOT)) {
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s*['"](\.[^'"]+)['"]|import\s*\(\s*['"](\.[^'"]+)['"]\s*\)|import\s+['"](\.[^'"]+)['"]/g)) {
      const target = path.resolve(path.dirname(file), (m[1] ?? m[2] ?? m[3])!)
      imports++
      const from = folderOf(file)
      const to = folderOf(target)
      if (!allowed(from, to)) broken.push(`${path.relative(ROOT, file)} -> ${path.relative(ROOT, target)}`)
    }
  }
  t.ok(imports > 100, `read ${imports} imports`)
  t.same(broken, [], 'no import climbs a layer')
})

test('a reach-in into another library\'s private fields lives only in a *-internals.ts file', async (t) => {
  const outside: string[] = []
  for (const file of sources(ROOT)) {
    if (/-internals\.m?ts$/.test(file)) continue
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '')
      if (/\.shardedSubscribers\b|getOwnPropertySymbols|rawListeners|[A-Za-z0-9)\]]\._(?!_)[A-Za-z]\w*/.test(code.replace(/this\._\w+/g, ''))) {
        outside.push(`${path.relative(ROOT, file)}:${i + 1}`)
      }
    })
  }
  t.same(outside, [])
})
