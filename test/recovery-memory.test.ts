import { test, type Test } from 'tap'
import WebSocket from 'ws'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { defineSocketRoute } from '../plugin'
import { buildRecoveryApp, listen, nextOpen, openClient, publish, TcpProxy, until } from './helpers/recovery'

test('a stream at 1,000 messages a second, cut twice (back after 0.5 s and 5 s): every message once, in order', async (t) => {
  const app = await buildRecoveryApp({ history: { size: 20_000, maxAge: 60_000 } })
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice', [500, 5000])
  await client.connect()
  t.equal(client.recovered, null, 'nothing resumed on the first connection')
  const recoveries: unknown[] = []
  client.on('open', (info) => recoveries.push(info.recovery))

  const COUNT = 8000
  const sending = publish((n) => app.chanx.broadcast('feed', { action: 'tick', payload: { n } }), COUNT, 1000)
  await until(() => messages.length >= 500, '500 ticks')
  proxy.cut()
  await nextOpen(client)
  await until(() => messages.length >= 2000, '2000 ticks')
  proxy.cut()
  const cutAt = messages.length
  await nextOpen(client)
  await sending
  await until(() => messages.at(-1)?.payload.n === COUNT - 1, 'the last tick')

  const ns = messages.map((m) => m.payload.n)
  t.equal(ns.length, COUNT, 'as many messages as were sent')
  t.ok(ns.every((n, i) => n === i), 'every message once, in order')
  t.ok(ns.length - cutAt > 4000, 'the 5 s away were replayed')
  t.same(recoveries.map((r: any) => r.recovered), [true, true])
  t.same(Object.keys(messages[0]!.chanx_pos), ['feed'])
  t.match(messages[0], { action: 'tick', is_mine: false, is_current: false, chanx_pos: { feed: [Number, String] } })
})

test('a reconnection after the window hears recovered: false, window_exceeded', async (t) => {
  const app = await buildRecoveryApp({ history: { size: 5, maxAge: 60_000 } })
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice', [300])
  await client.connect()
  await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 0 } })
  await until(() => messages.length === 1, 'the first tick')
  proxy.cut()
  await new Promise((resolve) => client.on('reconnecting', resolve))
  for (let n = 1; n <= 10; n++) await app.chanx.broadcast('feed', { action: 'tick', payload: { n } })
  const info = await nextOpen(client)
  t.same(info.recovery, { recovered: false, reason: 'window_exceeded', failed: { feed: 'window_exceeded' }, userFailed: null })
  t.equal(client.recovered, false)
  t.equal(messages.length, 1, 'nothing replayed from a stream with a gap')
  await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 11 } })
  await until(() => messages.length === 2, 'live again')
  t.equal(messages[1]!.chanx_pos.feed[0], 12)
})

test('a user whose permission was revoked while away gets no replay of that group', async (t) => {
  const access = new Map([['alice', ['feed', 'side']]])
  const app = await buildRecoveryApp({}, access)
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice', [200])
  await client.connect()
  proxy.cut()
  await new Promise((resolve) => client.on('reconnecting', resolve))
  access.set('alice', ['side'])
  await app.chanx.broadcast('feed', { action: 'secret', payload: null })
  await app.chanx.broadcast('side', { action: 'public', payload: null })
  const info = await nextOpen(client)
  t.same(info.recovery, { recovered: false, reason: 'not_allowed', failed: { feed: 'not_allowed' }, userFailed: null })
  await until(() => messages.length >= 1, 'the replay')
  t.same(messages.map((m) => m.action), ['public'])
})

test('a broadcast to two groups reaches a member of both once, moves both positions, and is replayed once', async (t) => {
  const app = await buildRecoveryApp()
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice', [200])
  await client.connect()
  await app.chanx.broadcast(['feed', 'side'], { action: 'both', payload: { n: 0 } })
  await until(() => messages.length === 1, 'the live copy')
  t.match(messages[0]!.chanx_pos, { feed: [1, String], side: [1, String] })
  proxy.cut()
  await new Promise((resolve) => client.on('reconnecting', resolve))
  await app.chanx.broadcast(['side', 'feed'], { action: 'both', payload: { n: 1 } })
  await app.chanx.broadcast('side', { action: 'side', payload: { n: 2 } })
  await app.chanx.broadcast(['feed', 'side'], { action: 'both', payload: { n: 3 } })
  await app.chanx.sendToUser('alice', { action: 'direct', payload: { n: 4 } })
  const info = await nextOpen(client)
  t.equal((info.recovery as { recovered: boolean }).recovered, true)
  await until(() => messages.length >= 5, 'the replay')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(messages.map((m) => m.payload.n), [0, 1, 2, 3, 4], 'each once, in order')
  t.match(messages[4], { action: 'direct', chanx_upos: [1, String] })
  t.notOk('is_mine' in messages[4]!, 'a user message carries no flags, as without history')
})

test('what a connection sent with excludeSelf is not replayed to it when it resumes', async (t) => {
  const app = await buildRecoveryApp()
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice', [200])
  await client.connect()
  const other = openClient(t, app, proxy, 'bob')
  await other.client.connect()
  client.send('say', { text: 'mine' })
  await until(() => other.messages.length === 1, 'bob hears alice')
  proxy.cut()
  await nextOpen(client)
  await app.chanx.broadcast('feed', { action: 'tick', payload: null })
  await until(() => messages.length === 1, 'a live tick')
  t.same(messages.map((m) => m.action), ['tick'], 'alice\'s own message is not replayed to her')
})

test('a resume that cannot be read is answered invalid_token, and the parameter never reaches the log', async (t) => {
  const lines: string[] = []
  const app = await buildRecoveryApp({}, undefined, lines)
  const port = await listen(t, app)
  const token = app.jwt.sign({ sub: 'alice' })
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}&chanx_recover=bm90LWpzb24`)
  t.teardown(() => { ws.close() })
  const first = await new Promise<any>((resolve) => ws.once('message', (data) => resolve(JSON.parse(String(data)))))
  t.match(first.chanx_recovery, { recovered: false, reason: 'invalid_token', positions: { feed: [0, String], side: [0, String] } })
  t.match(first.chanx_recovery.token, /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{11}$/)
  t.same(first.payload, { status_code: 200, status_text: 'OK', data: { detail: 'OK' } })
  const log = lines.join('')
  t.match(log, /chanx_recover=\[REDACTED\]/, 'the upgrade is logged with the parameter redacted')
  t.notMatch(log, /bm90LWpzb24/)
})

/** The frames of a raw socket, parsed, as they come. */
function rawSocket (t: Test, url: string) {
  const ws = new WebSocket(url)
  t.teardown(() => { ws.close() })
  const frames: Array<Record<string, any>> = []
  ws.on('message', (data) => frames.push(JSON.parse(String(data))))
  return { ws, frames }
}

test('a resume keeps its token, replays from the position it gives, and a replay past maxBufferedBytes is refused, not sent', async (t) => {
  const app = await buildRecoveryApp({ maxBufferedBytes: 4000 })
  const port = await listen(t, app)
  const url = `ws://127.0.0.1:${port}/ws?token=${app.jwt.sign({ sub: 'alice' })}`
  const first = rawSocket(t, url)
  await until(() => first.frames.length === 1, 'the authentication message')
  const { token, positions } = first.frames[0]!.chanx_recovery
  first.ws.terminate()
  for (let n = 0; n < 3; n++) await app.chanx.broadcast('feed', { action: 'tick', payload: { n } })
  const resume = (g: object) => '&chanx_recover=' + Buffer.from(JSON.stringify({ t: token, g })).toString('base64url')

  const second = rawSocket(t, url + resume({ feed: positions.feed }))
  await until(() => second.frames.length === 4, 'the replay')
  t.equal(second.frames[0]!.chanx_recovery.token, token, 'the lineage keeps its token')
  t.equal(second.frames[0]!.chanx_recovery.recovered, true)
  t.same(second.frames.slice(1).map((f) => f.payload.n), [0, 1, 2])

  for (let n = 3; n < 60; n++) await app.chanx.broadcast('feed', { action: 'tick', payload: { n, text: 'x'.repeat(100) } })
  const third = rawSocket(t, url + resume({ feed: positions.feed }))
  await until(() => third.frames.length === 1, 'the authentication message')
  t.match(third.frames[0]!.chanx_recovery, { recovered: false, reason: 'window_exceeded', failed: { feed: 'window_exceeded' } })
  await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 60 } })
  await until(() => third.frames.length === 2, 'a live message')
  t.equal(third.frames[1]!.payload.n, 60, 'the socket stays open, live')
})

test('with sendCompletion each replayed copy is followed by group_complete; a live copy the replay covers is dropped with its own', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { history: true })
  let during: (() => Promise<void>) | null = null
  app.route(defineSocketRoute({
    url: '/ws',
    sendCompletion: true,
    // A broadcast while the resuming socket is already in the group and the replay not yet read.
    groups: async () => { await during?.(); return ['feed'] },
    messages: { noop: Type.Null() },
    handlers: { noop: () => {} }
  }))
  const port = await listen(t, app)
  const first = rawSocket(t, `ws://127.0.0.1:${port}/ws`)
  await until(() => first.frames.length === 1, 'the authentication message')
  const { token, positions } = first.frames[0]!.chanx_recovery
  first.ws.terminate()
  await app.chanx.broadcast('feed', { action: 'tick', payload: 1 })
  during = async () => { during = null; setImmediate(() => { void app.chanx.broadcast('feed', { action: 'tick', payload: 2 }) }) }
  const resume = Buffer.from(JSON.stringify({ t: token, g: positions })).toString('base64url')
  const second = rawSocket(t, `ws://127.0.0.1:${port}/ws?chanx_recover=${resume}`)
  await until(() => second.frames.length >= 5, 'the replay')
  await app.chanx.broadcast('feed', { action: 'tick', payload: 3 })
  await until(() => second.frames.length >= 7, 'live')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(second.frames.slice(1).map((f) => f.action === 'tick' ? f.payload : f.action),
    [1, 'group_complete', 2, 'group_complete', 3, 'group_complete'])
})
