import { test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { join } from 'node:path'
import WebSocket from 'ws'
import { childEnv } from './helpers/child-env'
import { RedisServer, redisSkipReason } from './helpers/redis'

const SECRET = 'a-multiprocess-secret-of-32-chars!!'
const TTL = 2000
const skip = redisSkipReason()

/** An HS256 JWT for `sub`, as @fastify/jwt signs with SECRET. */
function token (sub: string): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, iat: Math.floor(Date.now() / 1000) })}`
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`
}

interface Worker { child: ChildProcess, port: number }

/** test/fixtures/chanx-app.ts as its own process on one Redis, with presence (ttl TTL). */
function startWorker (redisUrl: string, t: { teardown (fn: () => unknown): void }): Promise<Worker> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures', 'chanx-app.ts')], {
    env: childEnv({ REDIS_URL: redisUrl, JWT_SECRET: SECRET, PRESENCE_TTL: String(TTL) }),
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('a worker did not start within 30 s')), 30_000)
    child.stdout!.on('data', (chunk: Buffer) => {
      const match = /listening (\d+)/.exec(chunk.toString())
      if (match) { clearTimeout(timer); resolve({ child, port: Number(match[1]) }) }
    })
    child.on('exit', (code) => reject(new Error(`a worker exited with ${code}`)))
  })
}

class Client {
  readonly messages: Array<Record<string, unknown>> = []
  code: number | null = null
  private constructor (readonly ws: WebSocket) {
    ws.on('message', (data) => this.messages.push(JSON.parse(data.toString())))
    ws.on('close', (code) => { this.code = code })
  }

  static open (port: number, room: string, user: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const client = new Client(new WebSocket(`ws://127.0.0.1:${port}/ws/rooms/${room}?token=${token(user)}`))
      client.ws.once('message', () => resolve(client))
      client.ws.once('error', reject)
    })
  }
}

async function eventually (check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not true within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

async function get (port: number, path: string): Promise<any> {
  return await (await fetch(`http://127.0.0.1:${port}${path}`)).json()
}

async function post (port: number, path: string, body: object): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body)
  })
  return response.status
}

test('three processes on one Redis: broadcast, sendToUser, groupSize, presence, disconnectUser; a killed one stops counting', { skip, timeout: 55_000 }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const [w0, w1, w2] = await Promise.all([startWorker(redis.url, t), startWorker(redis.url, t), startWorker(redis.url, t)])
  const alice0 = await Client.open(w0.port, 'r1', 'alice')
  const bob1 = await Client.open(w1.port, 'r1', 'bob')
  const alice2 = await Client.open(w2.port, 'r1', 'alice')
  const carol2 = await Client.open(w2.port, 'r2', 'carol')
  t.teardown(() => { for (const c of [alice0, bob1, alice2, carol2]) c.ws.terminate() })

  t.equal(await post(w1.port, '/broadcast', { group: 'room:r1', message: { action: 'news', payload: 1 } }), 200)
  await eventually(() => alice0.messages.length === 2 && bob1.messages.length === 2 && alice2.messages.length === 2)
  for (const client of [alice0, bob1, alice2]) t.same(client.messages[1], { action: 'news', payload: 1, is_mine: false, is_current: false })

  t.equal(await post(w0.port, '/send', { user: 'alice', message: { action: 'notice', payload: 'for alice' } }), 200)
  await eventually(() => alice0.messages.length === 3 && alice2.messages.length === 3)
  t.same(alice2.messages[2], { action: 'notice', payload: 'for alice' })
  t.equal(bob1.messages.length, 2, 'not for bob')
  t.equal(carol2.messages.length, 1, 'other groups got only their authentication message')

  t.same(await get(w2.port, '/size?group=room:r1'), { size: 3 })
  t.same(await get(w1.port, '/size?group=room:r2'), { size: 1 })
  const full = { connections: 3, users: ['alice', 'bob'] }
  for (const worker of [w0, w1, w2]) {
    await eventually(async () => JSON.stringify(await get(worker.port, '/presence?group=room:r1')) === JSON.stringify(full))
  }
  t.pass('every process sees the presence of all three')

  // A worker dies without cleaning up: its sockets are gone, its presence entry stops counting within the ttl.
  const killed = Date.now()
  w1.child.kill('SIGKILL')
  await eventually(async () => (await get(w0.port, '/presence?group=room:r1')).connections === 2, TTL + 2000)
  const gone = Date.now() - killed
  t.ok(gone <= TTL + 500, `the dead worker stopped counting after ${gone} ms (ttl ${TTL} ms)`)
  t.same(await get(w2.port, '/presence?group=room:r1'), { connections: 2, users: ['alice'] })
  t.same(await get(w0.port, '/size?group=room:r1'), { size: 2 }, 'Redis dropped the dead process\'s subscription with its connection')

  t.equal(await post(w2.port, '/disconnect', { user: 'alice' }), 200)
  await eventually(() => alice0.code !== null && alice2.code !== null)
  t.equal(alice0.code, 4401)
  t.equal(alice2.code, 4401)
  t.equal(carol2.code, null, 'other users stay')
  await eventually(async () => (await get(w0.port, '/presence?group=room:r1')).connections === 0)
  t.same(await get(w0.port, '/presence?group=room:r2'), { connections: 1, users: ['carol'] })
})
