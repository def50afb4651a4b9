import { test } from 'tap'
import { buildRecoveryApp, listen, nextOpen, openClient, TcpProxy, until } from './helpers/recovery'

// 900 messages of 1,000 '€' (3 bytes each in UTF-8): about 0.95 million UTF-16 code units, under the default
// maxBufferedBytes (1 MiB), but 2.7 MB on the wire, which the slow-reader cut counts.
const WIDE = '€'.repeat(1000)

test('a multi-byte replay that cannot fit in maxBufferedBytes is reported window_exceeded, not cut', async (t) => {
  const app = await buildRecoveryApp({ history: { size: 1000, maxAge: 60_000 } }, new Map([['alice', ['feed']]]))
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice')
  let reconnections = 0
  client.on('reconnecting', () => { reconnections++ })

  await client.connect()
  await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 0, text: 'a' } })
  await until(() => messages.length === 1, 'the first tick')
  proxy.cut()
  await until(() => reconnections === 1, 'the client to notice the cut')
  for (let n = 1; n <= 900; n++) await app.chanx.broadcast('feed', { action: 'tick', payload: { n, text: WIDE } })
  const info = await nextOpen(client)
  t.same(info.recovery, { recovered: false, reason: 'window_exceeded', failed: { feed: 'window_exceeded' }, userFailed: null })

  // The socket stays open and live messages flow: it was not cut as a slow reader.
  await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 901, text: 'b' } })
  await until(() => messages.some((m) => m.payload.n === 901), 'the live tick after the resume')
  t.equal(reconnections, 1, 'no reconnection after the resume')
  t.same(messages.map((m) => m.payload.n), [0, 901], 'nothing of the replay was sent')
})

test('a multi-byte replay that fits in bytes is replayed whole', async (t) => {
  const app = await buildRecoveryApp({ history: { size: 1000, maxAge: 60_000 } }, new Map([['alice', ['feed']]]))
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice')
  let reconnections = 0
  client.on('reconnecting', () => { reconnections++ })

  await client.connect()
  proxy.cut()
  await until(() => reconnections === 1, 'the client to notice the cut')
  for (let n = 1; n <= 300; n++) await app.chanx.broadcast('feed', { action: 'tick', payload: { n, text: WIDE } })
  const info = await nextOpen(client)
  t.same(info.recovery, { recovered: true, reason: null, failed: {}, userFailed: null })
  await until(() => messages.length === 300, 'the replay')
  t.same(messages.map((m) => m.payload.n), Array.from({ length: 300 }, (_, i) => i + 1))
  t.equal(reconnections, 1, 'no reconnection after the resume')
})
