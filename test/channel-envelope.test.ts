import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import chanx from '../plugin'
import { ChannelHub } from '../plugin/channels/hub'
import { MemoryBroker, MemoryLayer } from '../plugin/channels/memory-layer'
import type { ChannelLayer, ChannelListener, ChannelLogger } from '../plugin/channels/layer'
import { FakeMember, settle } from './helpers/members'

const SECRET = 'a-channel-secret-of-at-least-32-bytes!'
const OTHER_SECRET = 'another-channel-secret-32-bytes-long!!'

function recordingLogger (): ChannelLogger & { lines: Array<{ obj: any, msg: string }> } {
  const lines: Array<{ obj: any, msg: string }> = []
  return {
    lines,
    warn (obj, msg) { lines.push({ obj, msg: String(msg) }) },
    error (obj, msg) { lines.push({ obj, msg: String(msg) }) }
  }
}

/** A layer whose listener the test drives by hand, as a forger on Redis would. */
function handLayer (): { layer: ChannelLayer, deliver: ChannelListener, published: Array<[string, string]> } {
  let listener!: ChannelListener
  const published: Array<[string, string]> = []
  const layer: ChannelLayer = {
    name: 'hand',
    setListener (l) { listener = l },
    async subscribe () {},
    async unsubscribe () {},
    async publish (channel, envelope) { published.push([channel, envelope]); return 1 },
    async close () {}
  }
  return { layer, deliver: (channel, envelope) => listener(channel, envelope), published }
}

test('a broadcast whose message is not the text of a JSON object is never delivered', async (t) => {
  const logger = recordingLogger()
  const { layer, deliver } = handLayer()
  const hub = new ChannelHub({ layer, logger })
  t.teardown(() => hub.close())
  const m = new FakeMember('x')
  await hub.join(m, 'g')
  // Each begins with { and ends with }: the only check the body used to get.
  for (const body of ['{"a":}', '{"a":1}}', '{"a":1,}', '{"a":"\u0000}', '{\'a\':1}']) {
    deliver('g:g', JSON.stringify({ v: 1, o: 'z', k: 'b', g: ['g'], s: null, m: body }))
    deliver('u:x', JSON.stringify({ v: 1, o: 'z', k: 'u', m: body }))
  }
  t.same(m.received, [], 'nothing invalid reaches a member')
  t.equal(logger.lines.length, 10)
  t.match(logger.lines[0].obj, { channel: 'g:g', reason: 'broadcast message is not a JSON object' })
  t.match(logger.lines[1].obj, { channel: 'u:x', reason: 'user message is not a JSON object' })

  deliver('g:g', JSON.stringify({ v: 1, o: 'z', k: 'b', g: ['g'], s: null, m: '{ }' }))
  deliver('g:g', JSON.stringify({ v: 1, o: 'z', k: 'b', g: ['g'], s: null, m: '{"a":1 }' }))
  t.same(m.received, [
    '{"is_mine":false,"is_current":false}',
    '{"a":1 ,"is_mine":false,"is_current":false}'
  ], 'valid objects are delivered as received, an empty one with its flags still valid JSON')
  for (const data of m.received) t.doesNotThrow(() => JSON.parse(data))
})

test('every field of an envelope is checked, and its kind must match its channel', async (t) => {
  const bad: Array<[string, object, string]> = [
    ['g:g', { v: 1, o: 'z', k: 'b', g: ['g'], s: 42, m: '{}' }, 'bad broadcast'],
    ['g:g', { v: 1, o: 'z', k: 'b', g: ['g', ''], s: null, m: '{}' }, 'bad broadcast'],
    ['g:g', { v: 1, o: 'z', k: 'b', g: ['x'.repeat(257)], s: null, m: '{}' }, 'bad broadcast'],
    ['u:alice', { v: 1, o: 'z', k: 'b', g: ['g'], s: null, m: '{}' }, 'bad broadcast'],
    ['g:g', { v: 1, o: 'z', k: 'u', m: '{}' }, 'bad user message'],
    ['u:alice', { v: 1, o: 'z', k: 'c', c: 1006, r: '' }, 'bad close'],
    ['u:alice', { v: 1, o: 'z', k: 'c', c: 4000, r: 'x'.repeat(124) }, 'bad close'],
    ['g:g', { v: 1, o: 'z', k: 'e', g: ['g'], n: 'ev' }, 'bad event'],
    ['g:g', { v: 1, o: 'z', k: 'q', i: -1 }, 'bad size query'],
    ['g:g', { v: 1, o: 'z', k: 'a', i: 1, n: 1 }, 'bad size answer'],
    ['g:g', { v: 1, o: 'z'.repeat(65), k: 'b', g: ['g'], s: null, m: '{}' }, 'bad origin'],
    ['g:g', { v: 2, o: 'z', k: 'b', g: ['g'], s: null, m: '{}' }, 'unknown version']
  ]
  for (const [channel, envelope, reason] of bad) {
    const logger = recordingLogger()
    const { layer, deliver } = handLayer()
    const hub = new ChannelHub({ layer, logger })
    const m = new FakeMember('alice')
    await hub.join(m, 'g')
    deliver(channel, JSON.stringify(envelope))
    t.same([m.received, m.events, m.closed], [[], [], null], `nothing delivered: ${reason}`)
    t.same(logger.lines.map((l) => l.obj.reason), [reason])
    await hub.close()
  }
})

test('malformed envelopes are logged at most 10 times per window, then counted', async (t) => {
  const logger = recordingLogger()
  const { layer, deliver } = handLayer()
  const hub = new ChannelHub({ layer, logger })
  t.teardown(() => hub.close())
  for (let i = 0; i < 50; i++) deliver('g:g', 'not json ' + i)
  t.equal(logger.lines.length, 10, 'a flood does not flood the log')
  t.equal(logger.lines[0].msg, 'fastify-chanx: ignored a malformed channel envelope')
  t.same(logger.lines[9].obj.envelope, 'not json 9')
})

test('with a secret, envelopes are signed and those not signed with it are dropped', async (t) => {
  const broker = new MemoryBroker()
  const logger = recordingLogger()
  const one = new ChannelHub({ layer: new MemoryLayer(broker), secret: SECRET })
  const two = new ChannelHub({ layer: new MemoryLayer(broker), secret: SECRET, logger })
  const stranger = new ChannelHub({ layer: new MemoryLayer(broker), secret: OTHER_SECRET })
  const unsigned = new ChannelHub({ layer: new MemoryLayer(broker) })
  t.teardown(async () => { for (const hub of [one, two, stranger, unsigned]) await hub.close() })
  const alice = new FakeMember('alice')
  await two.join(alice, 'room')
  await stranger.join(new FakeMember('s'), 'room')

  await stranger.broadcast('room', { forged: 'by a wrong secret' })
  await unsigned.broadcast('room', { forged: 'unsigned' })
  await unsigned.sendToUser('alice', { forged: 'unsigned' })
  await unsigned.disconnectUser('alice', 4000, 'forged')
  await unsigned.sendEvent('room', 'ev', { forged: true })
  await settle()
  t.same(alice.received, [])
  t.same(alice.events, [])
  t.equal(alice.closed, null)
  t.same(logger.lines.map((l) => l.obj.reason), ['bad signature', 'unsigned', 'unsigned', 'unsigned', 'unsigned'])

  await one.broadcast('room', { text: 'signed' })
  await one.sendToUser('alice', { text: 'to alice' })
  await settle()
  t.same(alice.messages, [{ text: 'signed', is_mine: false, is_current: false }, { text: 'to alice' }])
  await stranger.close()
  const bob = new FakeMember('bob')
  await one.join(bob, 'room')
  t.equal(await one.size('room'), 2, 'size queries and answers are signed too')
})

test('a signed envelope replayed on another channel is dropped', async (t) => {
  const { layer, deliver, published } = handLayer()
  const logger = recordingLogger()
  const hub = new ChannelHub({ layer, logger, secret: SECRET })
  t.teardown(() => hub.close())
  const bob = new FakeMember('bob')
  await hub.join(bob, 'g')
  // A disconnect of alice, as another process of the same cluster would sign it.
  const other = handLayer()
  const peer = new ChannelHub({ layer: other.layer, secret: SECRET })
  t.teardown(() => peer.close())
  await peer.disconnectUser('alice', 4003, 'banned')
  await peer.broadcast(['h', 'elsewhere'], { text: 'for h' })
  const [[channel, disconnect], [, forH]] = other.published
  t.equal(channel, 'u:alice')
  deliver('u:bob', disconnect)
  deliver('g:g', forH)
  t.equal(bob.closed, null, 'alice\'s disconnect does not close bob')
  t.same(bob.received, [], 'a broadcast signed for h is not delivered on g')
  t.same(logger.lines.map((l) => l.obj.reason), ['bad signature', 'bad signature'])
  deliver('u:alice', disconnect.replace('"c":4003', '"c":4004'))
  t.equal(logger.lines.at(-1)!.obj.reason, 'bad signature', 'an altered envelope fails')
  t.same(published, [])
})

test('with several secrets the first signs and every one is accepted (key rotation)', async (t) => {
  const broker = new MemoryBroker()
  const old = new ChannelHub({ layer: new MemoryLayer(broker), secret: OTHER_SECRET })
  const rotating = new ChannelHub({ layer: new MemoryLayer(broker), secret: [SECRET, Buffer.from(OTHER_SECRET)] })
  const fresh = new ChannelHub({ layer: new MemoryLayer(broker), secret: SECRET })
  t.teardown(async () => { for (const hub of [old, rotating, fresh]) await hub.close() })
  const r = new FakeMember('r')
  const f = new FakeMember('f')
  await rotating.join(r, 'g')
  await fresh.join(f, 'g')
  await old.broadcast('g', { from: 'old' })
  await rotating.broadcast('g', { from: 'rotating' })
  await settle()
  t.same(r.messages, [
    { from: 'old', is_mine: false, is_current: false },
    { from: 'rotating', is_mine: false, is_current: false }
  ], 'the old secret is still accepted (the second copy is local delivery)')
  t.same(f.messages, [{ from: 'rotating', is_mine: false, is_current: false }], 'the new one signs')
})

test('a secret shorter than 32 bytes, or not a string or Buffer, is refused', async (t) => {
  t.throws(() => new ChannelHub({ secret: 'short' }), { code: 'FST_CHANX_INVALID_OPTION', message: /secret must be a string or Buffer of at least 32 bytes/ })
  t.throws(() => new ChannelHub({ secret: [] }), { code: 'FST_CHANX_INVALID_OPTION', message: /non-empty list/ })
  t.throws(() => new ChannelHub({ secret: [SECRET, 42 as never] }), { code: 'FST_CHANX_INVALID_OPTION', message: /secret\[1\] must be/ })
})

test('a hostile Proxy thrown by a member is logged without reaching the logger\'s property reads', async (t) => {
  const hostile = new Proxy({}, {
    get () { throw new Error('gotcha') },
    getPrototypeOf () { throw new Error('gotcha') }
  })
  const lines: string[] = []
  // A logger that reads the error, as pino's serializer does.
  const logger: ChannelLogger = {
    warn (obj: any, msg) { lines.push(`${msg}: ${typeof obj.err === 'string' ? obj.err : obj.err.message}`) },
    error (obj: any, msg) { lines.push(`${msg}: ${typeof obj.err === 'string' ? obj.err : obj.err.message}`) }
  }
  const hub = new ChannelHub({ logger })
  t.teardown(() => hub.close())
  const m = new FakeMember('x')
  m.onEvent = () => { throw hostile }
  m.send = () => { throw hostile }
  await hub.join(m, 'g')
  t.doesNotThrow(() => hub.sendEvent('g', 'ev', null))
  t.doesNotThrow(() => hub.broadcast('g', { a: 1 }))
  t.same(lines, [
    'fastify-chanx: a channel event handler failed: an unreadable object',
    'fastify-chanx: a member failed to send: an unreadable object'
  ])
})

test('option channelSecret is checked at registration and names itself', async (t) => {
  for (const [channelSecret, message] of [
    ['too short', /option channelSecret must be a string or Buffer of at least 32 bytes/],
    [[SECRET, Buffer.alloc(8)], /option channelSecret\[1\] must be a string or Buffer of at least 32 bytes/],
    [42, /option channelSecret must be/]
  ] as const) {
    const app = Fastify()
    await app.register(websocket)
    await t.rejects(async () => { await app.register(chanx, { channelSecret: channelSecret as never }) }, { code: 'FST_CHANX_INVALID_OPTION', message })
    await app.close()
  }
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, { channelSecret: [SECRET, Buffer.from(OTHER_SECRET)] })
  await app.ready()
  t.equal(typeof app.chanx.broadcast, 'function', 'a valid secret list registers')
  await app.close()
})
