import { test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildRecoveryApp, listen, nextOpen, openClient, rawSocket, TcpProxy, until } from './helpers/recovery'

// 900 messages of 1,000 '€' (3 bytes each in UTF-8): about 0.95 million UTF-16 code units, under the default
// maxBufferedBytes (1 MiB), but 2.7 MB on the wire, which the slow-reader cut counts.
const WIDE = '€'.repeat(1000)

/**
 * Holds the handshake's read of feed's position (a fresh socket's, after its groups were joined) until
 * `meanwhile` has run: what it broadcasts waits for the socket to open.
 */
function holdFeedPosition (app: FastifyInstance, meanwhile: () => Promise<void>): void {
  const history = app.chanx.hub.history!
  const position = history.position.bind(history)
  history.position = async (channel) => {
    if (channel === 'g:feed') await meanwhile()
    return position(channel)
  }
}

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

test('output waiting for the socket to open is counted in bytes: multi-byte broadcasts past maxBufferedBytes close it 1013', async (t) => {
  const app = await buildRecoveryApp({ history: true, maxBufferedBytes: 4096 }, new Map([['alice', ['feed']]]))
  const port = await listen(t, app)
  // The handshake's read of feed's position is held while five broadcasts of 300 '€' reach the joined
  // socket: about 1,900 UTF-16 code units, but 4,900 bytes, past the 4,096 the socket may hold before it opens.
  holdFeedPosition(app, async () => {
    for (let n = 1; n <= 5; n++) await app.chanx.broadcast('feed', { action: 'tick', payload: { n, text: '€'.repeat(300) } })
  })
  const socket = await rawSocket(`ws://127.0.0.1:${port}/ws?token=${app.jwt.sign({ sub: 'alice' })}`)
  let poll: NodeJS.Timeout | undefined
  const delivered = new Promise<string>((resolve) => {
    poll = setInterval(() => { if (socket.messages.length >= 5) resolve('all five delivered, the socket open') }, 10)
  })
  const code = await Promise.race([socket.closed, delivered])
  clearInterval(poll)
  t.equal(socket.auth.payload.status_code, 200)
  t.equal(code, 1013, 'closed as a slow reader')
  t.same(socket.messages, [], 'none of the waiting output was sent')
})

test('output that waited for the socket to open within maxBufferedBytes is all delivered, the authentication message on top', async (t) => {
  const app = await buildRecoveryApp({ history: true, maxBufferedBytes: 4096 }, new Map([['alice', ['feed']]]))
  const port = await listen(t, app)
  // Four broadcasts of about 980 bytes and a short one: about 4,030 bytes wait, within the 4,096; with the
  // authentication message they pass it, and the flush at open (one corked write) must not count that
  // as a slow reader.
  holdFeedPosition(app, async () => {
    for (let n = 1; n <= 4; n++) await app.chanx.broadcast('feed', { action: 'tick', payload: { n, text: '€'.repeat(290) } })
    await app.chanx.broadcast('feed', { action: 'tick', payload: { n: 5, text: 'short' } })
  })
  const socket = await rawSocket(`ws://127.0.0.1:${port}/ws?token=${app.jwt.sign({ sub: 'alice' })}`)
  await until(() => socket.messages.length === 5, 'the five waiting broadcasts')
  t.same(socket.messages.map((m) => m.payload.n), [1, 2, 3, 4, 5])
  socket.ws.close()
})
