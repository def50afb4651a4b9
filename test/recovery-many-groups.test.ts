import { randomUUID } from 'node:crypto'
import { test } from 'tap'
import WebSocket from 'ws'
import { buildRecoveryApp, listen, nextOpen, openClient, TcpProxy, until } from './helpers/recovery'
import { createClient } from '../plugin/client'

test('a client in 300 UUID groups resumes: the positions that fit are replayed, the rest reported too_many_groups, no 431 loop', async (t) => {
  const groups = Array.from({ length: 300 }, () => randomUUID())
  const app = await buildRecoveryApp({ history: { size: 100, maxAge: 60_000 } }, new Map([['alice', groups]]))
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice')
  const codes: number[] = []
  client.on('reconnecting', ({ code }) => { codes.push(code) })

  await client.connect()
  for (const group of groups) await app.chanx.broadcast(group, { action: 'tick', payload: { group } })
  await until(() => messages.length === 300, 'a tick in every group')
  proxy.cut()
  await until(() => codes.length === 1, 'the client to notice the cut')
  const first = groups[0]!
  const last = groups[299]!
  await app.chanx.broadcast(first, { action: 'missed', payload: { group: first } })
  await app.chanx.broadcast(last, { action: 'missed', payload: { group: last } })
  const info = await nextOpen(client) as { recovery: { recovered: boolean, reason: string, failed: Record<string, string> } }
  t.same(codes, [1006], 'one reconnection, not refused')
  t.equal(info.recovery.recovered, false)
  t.equal(info.recovery.reason, 'too_many_groups')
  const unsent = Object.keys(info.recovery.failed)
  t.ok(unsent.length > 0 && unsent.length < 300, `${unsent.length} of 300 positions did not fit`)
  t.ok(unsent.every((group) => info.recovery.failed[group] === 'too_many_groups'))
  t.notOk(first in info.recovery.failed, 'the first group was sent')
  t.equal(info.recovery.failed[last], 'too_many_groups', 'the last group was not sent, and the client says so')
  await until(() => messages.length === 301, 'the replay of the sent group')
  t.same(messages[300], { action: 'missed', payload: { group: first }, chanx_pos: messages[300]!.chanx_pos, is_mine: false, is_current: false })

  // The next reconnection continues from the server's positions for the groups reported: nothing of before is asked again.
  proxy.cut()
  await until(() => codes.length === 2, 'the second cut')
  await app.chanx.broadcast(first, { action: 'again', payload: { group: first } })
  const again = await nextOpen(client) as { recovery: { recovered: boolean } }
  t.equal(again.recovery.recovered, false, 'the groups that never fit are reported again')
  await until(() => messages.length === 302, 'the second replay')
  t.same(messages.slice(300).map((m) => m.action), ['missed', 'again'], 'each message once')
})

test('a 431 halves the resume parameter: the next try sends fewer positions and reports the rest', async (t) => {
  const groups = Array.from({ length: 300 }, () => randomUUID())
  const app = await buildRecoveryApp({ history: { size: 100, maxAge: 60_000 } }, new Map([['alice', groups]]))
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const client = createClient(`ws://127.0.0.1:${proxy.port}/ws`, {
    WebSocket: WebSocket as never,
    getToken: () => app.jwt.sign({ sub: 'alice' }),
    maxResumeLength: 40_000, // past Node's 16 KiB header limit
    policy: () => ({ action: 'reconnect', delay: 20 })
  })
  t.teardown(() => client.close())
  const codes: number[] = []
  client.on('reconnecting', ({ code }) => { codes.push(code) })
  await client.connect()
  proxy.cut()
  const info = await nextOpen(client) as { recovery: { recovered: boolean, reason: string, failed: Record<string, string> } }
  // 40,000 → 20,000 (both past the limit: the whole resume is about 23,000 characters) → 10,000, which gets in.
  t.same(codes, [1006, 4431, 4431], 'two 431s, then a smaller resume gets in: bounded, not a loop')
  t.equal(info.recovery.recovered, false)
  t.equal(info.recovery.reason, 'too_many_groups')
  t.ok(Object.keys(info.recovery.failed).length > 0, 'the positions left out are reported')
})

test('maxResumeLength is checked when the client is made', async (t) => {
  for (const maxResumeLength of [-1, 1.5, Number.NaN, '8192']) {
    t.throws(() => createClient('ws://127.0.0.1:1/ws', { maxResumeLength: maxResumeLength as never }), { code: 'FST_CHANX_CLIENT_INVALID_OPTION', message: /maxResumeLength/ })
  }
})
