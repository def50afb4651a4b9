import { test } from 'tap'
import { spawn } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx, { IsAuthenticated, jwtAuthentication } from '../plugin'
import { closeApp } from '../plugin/testing'
import { childEnv } from './helpers/child-env'
import { RedisServer, freePort, redisSkipReason } from './helpers/redis'

const SECRET = 'a-redis-groups-secret-of-32-chars!!'
const skip = redisSkipReason()

/** This process's app on the Redis layer, with the same routes as test/fixtures/chanx-app.ts. */
async function localApp (redisUrl: string) {
  const app = Fastify()
  await app.register(jwt, { secret: SECRET })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })], permissions: [IsAuthenticated], redis: redisUrl })
  app.get('/ws/rooms/:roomId', { websocket: true, groups: (ctx) => [`room:${(ctx.params as { roomId: string }).roomId}`] }, () => {})
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, port: (app.server.address() as AddressInfo).port }
}

/** The same app in another process. */
async function remoteApp (redisUrl: string, t: { teardown (fn: () => unknown): void }): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures', 'chanx-app.ts')], {
    env: childEnv({ REDIS_URL: redisUrl, JWT_SECRET: SECRET }),
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { child.kill('SIGTERM') })
  return await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the remote app did not start within 20 s')), 20_000)
    child.stdout.on('data', (chunk: Buffer) => {
      const match = /listening (\d+)/.exec(chunk.toString())
      if (match) { clearTimeout(timer); resolve(Number(match[1])) }
    })
    child.on('exit', (code) => reject(new Error(`the remote app exited with ${code}`)))
  })
}

class Client {
  readonly messages: string[] = []
  code: number | null = null
  private constructor (readonly ws: WebSocket) {
    ws.on('message', (data) => this.messages.push(data.toString()))
    ws.on('close', (code) => { this.code = code })
  }

  static open (port: number, room: string, token: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const client = new Client(new WebSocket(`ws://127.0.0.1:${port}/ws/rooms/${room}?token=${token}`))
      client.ws.once('message', () => resolve(client))
      client.ws.once('error', reject)
    })
  }

  async next (count: number, within = 3000): Promise<string[]> {
    const deadline = Date.now() + within
    while (this.messages.length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
    return this.messages.slice(0, count)
  }
}

test('two app instances in separate processes share groups over Redis', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const local = await localApp(redis.url)
  t.teardown(() => closeApp(local.app))
  const remotePort = await remoteApp(redis.url, t)
  const sign = (sub: string) => local.app.jwt.sign({ sub })

  const here = await Client.open(local.port, 'r1', sign('alice'))
  const there = await Client.open(remotePort, 'r1', sign('bob'))
  const otherRoom = await Client.open(remotePort, 'r2', sign('carol'))
  const aliceThere = await Client.open(remotePort, 'r2', sign('alice'))
  t.teardown(() => { for (const c of [here, there, otherRoom, aliceThere]) c.ws.terminate() })

  // From this process to members in both.
  await local.app.chanx.broadcast('room:r1', { action: 'news', payload: 'from local' })
  const expected = '{"action":"news","payload":"from local","is_mine":false,"is_current":false}'
  t.same((await here.next(2)).slice(1), [expected])
  t.same((await there.next(2)).slice(1), [expected])

  // From the other process (a socket's frame there becomes a broadcast) back to this one.
  there.ws.send(JSON.stringify({ room: 'r1' }))
  t.match((await here.next(3))[2], /"action":"chat"/)

  // Cluster-wide count, then a leave is honoured everywhere.
  t.equal(await local.app.chanx.groupSize('room:r1'), 2)
  there.ws.close(1000)
  const deadline = Date.now() + 3000
  while (await local.app.chanx.groupSize('room:r1') !== 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(await local.app.chanx.groupSize('room:r1'), 1)
  const response = await fetch(`http://127.0.0.1:${remotePort}/broadcast`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ group: 'room:r1', message: { action: 'after-leave', payload: null } })
  })
  t.equal(response.status, 200)
  t.match((await here.next(4))[3], /after-leave/)
  t.equal(otherRoom.messages.length, 1, 'members of other groups got only their authentication message')

  // A user disconnected from this process loses the sockets it holds in the other.
  await local.app.chanx.disconnectUser('alice', 4401, 'Logged out')
  const until = Date.now() + 3000
  while ((here.code === null || aliceThere.code === null) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(here.code, 4401)
  t.equal(aliceThere.code, 4401)
  t.equal(otherRoom.code, null, 'other users stay')
})

test('an unreachable Redis fails registration with a clear error', { skip }, async (t) => {
  const port = await freePort()
  const app = Fastify()
  await app.register(websocket)
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(chanx, { redis: `redis://127.0.0.1:${port}` }) }, { code: 'FST_CHANX_CHANNEL_LAYER_UNREACHABLE' })
})
