import { test, type Test } from 'tap'
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import jwt from '@fastify/jwt'
import { Type } from '@sinclair/typebox'
import chanx, { defineSocketRoute, jwtAuthentication } from '../plugin'
import { startExample } from './helpers/child-app'

/**
 * Chanx 2.10's own client generator (`chanx generate-client`, Python) on our document, run offline by the
 * shared tool `../shared/tools/chanx-generate-client.sh` (beside the repository, as CI lays it out; override
 * with CHANX_GENERATE_CLIENT), with a CPython 3.11 (PYTHON, else python3.11, else python3). Without them the
 * tests are skipped with the reason, except on CI (CI=true), where that is a failure.
 */
const root = join(__dirname, '..')
const tool = process.env.CHANX_GENERATE_CLIENT ?? join(root, '..', 'shared', 'tools', 'chanx-generate-client.sh')
/** The venv the tool installs Chanx into: the generated client runs there. */
const venvPython = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'chanx-2.10-venv', 'bin', 'python')

function findPython (): string | null {
  for (const candidate of [process.env.PYTHON, 'python3.11', 'python3']) {
    if (candidate === undefined || candidate === '') continue
    const probe = spawnSync(candidate, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8', timeout: 10_000 })
    if (probe.status === 0 && probe.stdout.trim() === '3.11') return candidate
  }
  return null
}

const python = findPython()
const missing = !existsSync(tool)
  ? `${tool} not found (set CHANX_GENERATE_CLIENT)`
  : python === null ? 'no CPython 3.11 (set PYTHON): the tool\'s wheels are cp311 builds' : null
const skip = missing !== null && !process.env.CI ? missing : false
if (skip !== false) console.log(`# skipping Chanx generator tests: ${skip}`)

/** Runs a command to its end (or `timeout`), with its output whatever its exit code. */
function run (file: string, args: string[], timeout: number, env: Record<string, string> = {}): Promise<{ code: number | null, output: string, stdout: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
      resolve({ code, output: `${stdout}${stderr}${error !== null && code === null ? `\n(${error.message})` : ''}`, stdout })
    })
  })
}

/** Generates a package from `document` (a file or a URL) into a temp dir removed at teardown; its path. */
async function generate (t: Test, document: string): Promise<string> {
  const out = mkdtempSync(join(tmpdir(), 'chanx-generated-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  // The first run installs Chanx from the wheels into a cached venv (~20 s); later runs take ~5 s.
  const result = await run('bash', [tool, document, join(out, 'client')], 90_000, { PYTHON: python! })
  t.equal(result.code, 0, 'the generator accepts the document and every generated module imports')
  t.match(result.output, 'generated package: 0 module(s) failed to import')
  if (result.code !== 0) t.comment(result.output)
  return join(out, 'client')
}

test('Chanx 2.10 generates an importable package from a document whose two channels share messages', { skip, timeout: 120_000 }, async (t) => {
  if (missing !== null) return t.fail(`CI is set but ${missing}`)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(jwt, { secret: 'a-jwt-secret-of-at-least-32-characters-long' })
  await app.register(websocket)
  await app.register(chanx, { asyncapi: { info: { title: 'Rooms', version: '1.0.0' } } })
  // Shared across the two channels: authentication, ping/pong, error, client chat, and a titled Author
  // nested in each route's outgoing chat. Before Author and the payloads were components, shared/messages.py
  // named AuthenticatePayload without defining it (NameError) and every channel module failed with it.
  const Author = Type.Object({ id: Type.Integer(), name: Type.String() }, { title: 'Author' })
  for (const url of ['/ws/rooms/:room', '/ws/lobby']) {
    app.route(defineSocketRoute({
      url,
      authentication: [jwtAuthentication({ query: 'token' })],
      messages: { chat: Type.Object({ text: Type.String() }) },
      outgoing: { chat: Type.Object({ text: Type.String(), author: Author }) },
      handlers: { chat: () => undefined }
    }))
  }
  await app.ready()
  const dir = mkdtempSync(join(tmpdir(), 'chanx-document-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'asyncapi.json'), JSON.stringify(app.chanx.asyncapi()))
  const started = Date.now()
  const client = await generate(t, join(dir, 'asyncapi.json'))
  t.comment(`generated and imported in ${Date.now() - started} ms`)
  t.ok(existsSync(join(client, 'shared', 'messages.py')), 'the shared messages have their own module')
})

test('a client Chanx 2.10 generated from the example\'s /asyncapi.json drives a typed round trip against the example', { skip, timeout: 120_000 }, async (t) => {
  if (missing !== null) return t.fail(`CI is set but ${missing}`)
  const base = await startExample(t)
  const client = await generate(t, `${base}/asyncapi.json`)

  const login = await fetch(`${base}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'alice', password: 'alice' })
  })
  t.equal(login.status, 200)
  const { token } = await login.json() as { token: string }

  const started = Date.now()
  const trip = await run(venvPython, [join(__dirname, 'fixtures', 'chanx_round_trip.py'), client, base.replace('http', 'ws'), token, 'lobby'], 20_000)
  t.comment(`round trip in ${Date.now() - started} ms (Python start included)`)
  t.equal(trip.code, 0, trip.output)
  const report = JSON.parse(trip.stdout) as { failures: string[], received: Array<{ class: string, payload_class: string, message: any }> }
  t.same(report.failures, [], 'every frame fit a generated model, and nothing failed')
  t.same(report.received.map((r) => [r.class, r.payload_class]), [
    ['AuthenticationMessage', 'AuthenticationPayload'],
    ['PongMessage', 'NoneType'],
    ['WsRoomsRoomIdChatMessage', 'WsRoomsRoomIdChatPayload'],
    ['WsRoomsRoomIdHistoryMessage', 'WsRoomsRoomIdHistoryPayload']
  ], 'each frame the example sent was parsed into its generated class')
  t.same(report.received[0]!.message.payload, { status_code: 200, status_text: 'OK', data: { detail: 'OK' } })
  t.match(report.received[2]!.message, { action: 'chat', payload: { username: 'alice', text: 'hello from a generated client' }, is_mine: true, is_current: true })
  t.match(report.received[3]!.message.payload.messages, [{ username: 'alice', text: 'hello from a generated client' }], 'the chat the client sent is in the room\'s history')
})
