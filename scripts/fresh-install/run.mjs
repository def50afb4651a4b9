// The fresh-install check (`npm run fresh-install`, run by .ci/run after the test suite): what a new user
// gets. It packs this repository, installs the tarball into a new ESM TypeScript project with no lockfile
// (so npm picks the newest fastify, @fastify/websocket, ws, ioredis and TypeBox lines our ranges allow,
// whatever this repository's lockfile pins), prints the versions it got, type-checks the project strict,
// and runs the smoke suite in project/src on them, with a redis-server and a three-node Redis Cluster of its own
// on free loopback ports.
// The lockfile cannot see a dependency's new release; this can. Exit code 0 only when every step passed.
// Bounded: the whole check is cut at BUDGET_MS. FRESH_INSTALL_KEEP=1 keeps the temporary project.
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const BUDGET_MS = 4 * 60_000
const started = Date.now()
const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const work = mkdtempSync(join(tmpdir(), 'chanx-fresh-'))
const project = join(work, 'project')
const children = new Set()
let redis = null

function log (line) { console.log(`fresh-install: ${line}`) }

function finish (ok, why) {
  for (const child of children) child.kill('SIGKILL')
  if (redis !== null) redis.kill('SIGKILL')
  if (process.env.FRESH_INSTALL_KEEP) log(`kept ${work}`)
  else rmSync(work, { recursive: true, force: true })
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  if (ok) log(`ok in ${seconds} s`)
  else log(`FAILED in ${seconds} s: ${why}`)
  process.exit(ok ? 0 : 1)
}

const deadline = setTimeout(() => finish(false, `over the ${BUDGET_MS / 1000} s budget`), BUDGET_MS)
deadline.unref()

/**
 * Runs a command, its output passed through (unless `quiet`) and returned. The budget timer ends whatever is
 * still running.
 */
function run (command, args, { quiet = false, ...options } = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
    children.add(child)
    let output = ''
    child.stdout.on('data', (data) => { output += data; if (!quiet) process.stdout.write(data) })
    child.stderr.on('data', (data) => { output += data; if (!quiet) process.stderr.write(data) })
    child.on('close', (code) => { children.delete(child); resolve({ code, output }) })
  })
}

function freePort () {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => resolve(port)) })
  })
}

function ping (port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const done = (ok) => { socket.destroy(); resolve(ok) }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => done(String(data).startsWith('+PONG')))
  })
}

const redisBin = process.env.REDIS_SERVER ?? 'redis-server'
const redisCli = process.env.REDIS_CLI ?? 'redis-cli'
for (const bin of [redisBin, redisCli]) {
  const probe = spawnSync(bin, ['--version'], { encoding: 'utf8' })
  if (probe.error !== undefined || probe.status !== 0) finish(false, `${bin} not found: install redis-server (7+; the smoke suite broadcasts over Redis and a Redis Cluster)`)
}

// 1. The tarball, as `npm pack` makes it (its `prepack` builds dist/).
const packed = await run('npm', ['pack', '--pack-destination', work, '--silent'], { cwd: root })
if (packed.code !== 0) finish(false, 'npm pack failed')
const tarball = readdirSync(work).find((name) => name.endsWith('.tgz'))
if (tarball === undefined) finish(false, 'npm pack wrote no tarball')

// 2. A new ESM project: our ranges for the runtime packages, so that npm resolves the newest they allow.
const deps = { ...manifest.devDependencies, ...manifest.dependencies, ...manifest.peerDependencies }
const pick = (...names) => Object.fromEntries(names.map((name) => [name, deps[name]]))
cpSync(join(here, 'project'), project, { recursive: true, filter: (path) => !/[\\/](node_modules|out)$/.test(path) })
writeFileSync(join(project, 'package.json'), JSON.stringify({
  name: 'chanx-fresh-install',
  private: true,
  type: 'module',
  dependencies: {
    'fastify-chanx': `file:../${tarball}`,
    ...pick('fastify', '@fastify/websocket', '@fastify/jwt', 'ws', 'ioredis', '@sinclair/typebox', 'typebox')
  },
  // The tools at the versions this repository is checked with.
  devDependencies: pick('typescript', '@types/node', '@types/ws')
}, null, 2))
const installed = await run('npm', ['install', '--no-package-lock', '--no-audit', '--no-fund'], { cwd: project })
if (installed.code !== 0) finish(false, 'npm install failed')
// A tarball holds dist/ and needs no script: npm must not warn about one (allowScripts).
const scriptWarning = installed.output.split('\n').find((line) => /allowScripts|install-scripts|prepare/i.test(line) && /warn/i.test(line))
const failures = []
if (scriptWarning !== undefined) failures.push(`npm warned about a script (${scriptWarning.trim()})`)

const version = (name, from = project) => {
  const file = join(from, 'node_modules', name, 'package.json')
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).version : null
}
const versions = ['fastify', '@fastify/websocket', 'ws', 'ioredis', '@sinclair/typebox', 'typebox', '@fastify/jwt', 'typescript']
  .map((name) => `${name} ${version(name)}`)
// A second copy of ws under the plugin or @fastify/websocket would be the one they load.
for (const parent of ['fastify-chanx', '@fastify/websocket']) {
  const nested = version('ws', join(project, 'node_modules', parent))
  if (nested !== null) versions.push(`ws ${nested} (under ${parent})`)
}
log(`versions: ${versions.join(', ')}; node ${process.version}`)

// 3. Strict type check of the project (tsconfig.json: strict, nodenext, no skipLibCheck); it emits anyway,
// so that the smoke suite runs (and reports) even when the types are wrong.
const tsc = await run(process.execPath, [join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { cwd: project })
if (tsc.code !== 0) failures.push('tsc --strict failed')
else log('tsc --strict (module nodenext): ok')

// 4. The smoke suite, one file at a time, against a redis-server of its own.
const port = await freePort()
redis = spawn(redisBin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
let up = false
for (let i = 0; i < 50 && !up; i++) {
  up = await ping(port)
  if (!up) await new Promise((resolve) => setTimeout(resolve, 100))
}
if (!up) finish(false, `redis-server did not answer on 127.0.0.1:${port}`)
// A Redis Cluster of three primaries (sharded pub/sub): the ioredis reach-ins' canaries run when it connects.
const clusterPorts = [await freePort(), await freePort(), await freePort()]
const clusterDir = join(work, 'cluster')
mkdirSync(clusterDir)
for (const clusterPort of clusterPorts) {
  const node = spawn(redisBin, ['--port', String(clusterPort), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
    '--cluster-config-file', join(clusterDir, `nodes-${clusterPort}.conf`), '--cluster-node-timeout', '1000',
    '--save', '', '--appendonly', 'no', '--dir', clusterDir], { stdio: 'ignore' })
  children.add(node)
}
for (const clusterPort of clusterPorts) {
  let answering = false
  for (let i = 0; i < 50 && !answering; i++) {
    answering = await ping(clusterPort)
    if (!answering) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  if (!answering) finish(false, `a cluster node did not answer on 127.0.0.1:${clusterPort}`)
}
const created = await run(redisCli, ['-h', '127.0.0.1', '-p', String(clusterPorts[0]), '--cluster', 'create',
  ...clusterPorts.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'])
if (created.code !== 0) finish(false, 'redis-cli --cluster create failed')
let clusterOk = false
for (let i = 0; i < 100 && !clusterOk; i++) {
  const infos = await Promise.all(clusterPorts.map((p) => run(redisCli, ['-h', '127.0.0.1', '-p', String(p), 'cluster', 'info'], { quiet: true })))
  clusterOk = infos.every((info) => info.output.includes('cluster_state:ok'))
  if (!clusterOk) await new Promise((resolve) => setTimeout(resolve, 100))
}
if (!clusterOk) finish(false, 'the Redis Cluster did not reach cluster_state:ok')

const tests = readdirSync(join(project, 'out')).filter((name) => name.endsWith('.test.js')).sort().map((name) => join('out', name))
const smoke = await run(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=60000', ...tests], {
  cwd: project,
  env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_CLUSTER: clusterPorts.map((p) => `127.0.0.1:${p}`).join(','), NODE_OPTIONS: '' }
})
if (smoke.code !== 0) failures.push('the smoke suite failed')
finish(failures.length === 0, failures.join('; '))
