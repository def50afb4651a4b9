import { test } from 'tap'
import { ChannelHub } from '../plugin/channels/hub'
import { MemoryBroker, MemoryLayer } from '../plugin/channels/memory-layer'
import type { ChannelLayer, ChannelListener, ChannelLogger } from '../plugin/channels/layer'
import { FakeMember, settle } from './helpers/members'

/** A memory layer that records what the hub asks of it. */
class SpyLayer extends MemoryLayer {
  readonly calls: string[] = []
  override async subscribe (channel: string): Promise<void> {
    this.calls.push('subscribe ' + channel)
    return super.subscribe(channel)
  }

  override async unsubscribe (channel: string): Promise<void> {
    this.calls.push('unsubscribe ' + channel)
    return super.unsubscribe(channel)
  }

  override async publish (channel: string, envelope: string): Promise<number> {
    this.calls.push('publish ' + channel)
    return super.publish(channel, envelope)
  }
}

function recordingLogger (): ChannelLogger & { warnings: string[] } {
  const warnings: string[] = []
  return { warnings, warn (_obj, msg) { warnings.push(String(msg)) }, error (_obj, msg) { warnings.push(String(msg)) } }
}

test('a member of several target groups gets exactly one copy', async (t) => {
  const hub = new ChannelHub()
  t.teardown(() => hub.close())
  const a = new FakeMember('alice')
  const b = new FakeMember('bob')
  await hub.join(a, 'room:1')
  await hub.join(a, 'room:2')
  await hub.join(b, 'room:2')
  await hub.broadcast(['room:1', 'room:2'], { action: 'hello', payload: 1 })
  t.same(a.received, ['{"action":"hello","payload":1,"is_mine":false,"is_current":false}'])
  t.same(b.received, ['{"action":"hello","payload":1,"is_mine":false,"is_current":false}'])
})

test('is_mine is true for the sender\'s other sockets, is_current only for the sending socket', async (t) => {
  const hub = new ChannelHub()
  t.teardown(() => hub.close())
  const sender = new FakeMember('alice')
  const sameUser = new FakeMember('alice')
  const stranger = new FakeMember('bob')
  for (const m of [sender, sameUser, stranger]) await hub.join(m, 'room')
  await hub.broadcast('room', { action: 'say' }, { sender, excludeSelf: false })
  t.same(sender.messages, [{ action: 'say', is_mine: true, is_current: true }])
  t.same(sameUser.messages, [{ action: 'say', is_mine: true, is_current: false }])
  t.same(stranger.messages, [{ action: 'say', is_mine: false, is_current: false }])
})

test('excludeSelf is on by default: the sending socket gets nothing, its user\'s other sockets do', async (t) => {
  const hub = new ChannelHub()
  t.teardown(() => hub.close())
  const sender = new FakeMember('alice')
  const sameUser = new FakeMember('alice')
  await hub.join(sender, 'room')
  await hub.join(sameUser, 'room')
  await hub.broadcast('room', { action: 'say' }, { sender })
  t.same(sender.received, [])
  t.same(sameUser.messages, [{ action: 'say', is_mine: true, is_current: false }])
})

test('an anonymous sender is never "mine", not even to other anonymous members', async (t) => {
  const hub = new ChannelHub()
  t.teardown(() => hub.close())
  const sender = new FakeMember(null)
  const other = new FakeMember(null)
  await hub.join(sender, 'lobby')
  await hub.join(other, 'lobby')
  await hub.broadcast('lobby', {}, { sender, excludeSelf: false })
  t.same(sender.received, ['{"is_mine":false,"is_current":true}'])
  t.same(other.received, ['{"is_mine":false,"is_current":false}'])
})

test('flags set by the sender are overridden by the hub\'s', async (t) => {
  const hub = new ChannelHub()
  t.teardown(() => hub.close())
  const m = new FakeMember('bob')
  await hub.join(m, 'room')
  await hub.broadcast('room', { is_mine: true, text: 'x' })
  t.same(m.messages, [{ is_mine: false, text: 'x', is_current: false }])
})

test('a leave is honoured at once, and leaveAll leaves every group and the user channel', async (t) => {
  const hub = new ChannelHub()
  t.teardown(() => hub.close())
  const m = new FakeMember('carol')
  await hub.join(m, 'a')
  await hub.join(m, 'b')
  t.same(hub.groupsOf(m), ['a', 'b'])
  const leaving = hub.leave(m, 'a')
  await hub.broadcast('a', { n: 1 })
  await leaving
  await hub.broadcast('b', { n: 2 })
  t.same(m.messages, [{ n: 2, is_mine: false, is_current: false }])
  await hub.leaveAll(m)
  t.same(hub.groupsOf(m), [])
  await hub.broadcast('b', { n: 3 })
  await hub.sendToUser('carol', { n: 4 })
  t.equal(m.received.length, 1)
  t.equal(hub.localSize('b'), 0)
})

test('sendToUser reaches every socket of that user and no one else', async (t) => {
  const hub = new ChannelHub()
  t.teardown(() => hub.close())
  const a1 = new FakeMember('alice')
  const a2 = new FakeMember('alice')
  const b = new FakeMember('bob')
  await hub.join(a1, 'room')
  await hub.attach(a2) // in no group, still reachable as a user
  await hub.join(b, 'room')
  await hub.sendToUser('alice', { action: 'notice' })
  t.same(a1.received, ['{"action":"notice"}'])
  t.same(a2.received, ['{"action":"notice"}'])
  t.same(b.received, [])
})

test('disconnectUser closes every socket of that user with the code and reason', async (t) => {
  const hub = new ChannelHub()
  t.teardown(() => hub.close())
  const a1 = new FakeMember('alice')
  const a2 = new FakeMember('alice')
  const b = new FakeMember('bob')
  // A closing socket leaves synchronously, as a real connection's close handler may.
  a1.close = function (code, reason) { this.closed = { code, reason }; void hub.leaveAll(this) }
  for (const m of [a1, a2, b]) await hub.join(m, 'room')
  await hub.disconnectUser('alice', 4001, 'banned')
  t.same(a1.closed, { code: 4001, reason: 'banned' })
  t.same(a2.closed, { code: 4001, reason: 'banned' })
  t.equal(b.closed, null)
  t.throws(() => hub.disconnectUser('alice', 1006, ''), { code: 'FST_CHANX_INVALID_CHANNEL_ARGUMENT' })
  t.throws(() => hub.disconnectUser('alice', 4000, 'x'.repeat(124)), { code: 'FST_CHANX_INVALID_CHANNEL_ARGUMENT' })
})

test('the layer is subscribed on a group\'s first local member and unsubscribed after its last', async (t) => {
  const layer = new SpyLayer()
  const hub = new ChannelHub({ layer })
  t.teardown(() => hub.close())
  const a = new FakeMember(null)
  const b = new FakeMember(null)
  await Promise.all([hub.join(a, 'g'), hub.join(b, 'g')])
  t.same(layer.calls, ['subscribe g:g'], 'one subscription for two members')
  await hub.leave(a, 'g')
  t.same(layer.calls, ['subscribe g:g'], 'still one member')
  await hub.leave(b, 'g')
  t.same(layer.calls, ['subscribe g:g', 'unsubscribe g:g'])
  await hub.join(a, 'g')
  t.same(layer.calls, ['subscribe g:g', 'unsubscribe g:g', 'subscribe g:g'])
})

test('join awaits the subscription, and a failed subscription leaves the member out', async (t) => {
  let release!: () => void
  const layer = new SpyLayer()
  const gate = new Promise<void>((resolve) => { release = resolve })
  layer.subscribe = async (channel) => {
    await gate
    if (channel === 'g:broken') throw new Error('no')
  }
  const hub = new ChannelHub({ layer })
  t.teardown(() => hub.close())
  const m = new FakeMember(null)
  let joined = false
  const joining = hub.join(m, 'g').then(() => { joined = true })
  await settle()
  t.equal(joined, false, 'not joined before the layer acknowledged')
  release()
  await joining
  t.equal(joined, true)
  await t.rejects(hub.join(m, 'broken'), { message: 'no' })
  t.same(hub.groupsOf(m), ['g'])
  t.equal(hub.localSize('broken'), 0)
})

test('one broadcast serializes once and publishes one envelope per group', async (t) => {
  const layer = new SpyLayer()
  const hub = new ChannelHub({ layer })
  t.teardown(() => hub.close())
  let serialized = 0
  const message = { toJSON () { serialized++; return { action: 'x' } } }
  const members = Array.from({ length: 50 }, (_, i) => new FakeMember(`u${i % 5}`))
  for (const m of members) await hub.join(m, i(m) % 2 === 0 ? 'even' : 'odd')
  layer.calls.length = 0
  await hub.broadcast(['even', 'odd'], message, { sender: members[0] })
  t.equal(serialized, 1)
  t.same(layer.calls, ['publish g:even', 'publish g:odd'])
  t.equal(members.filter((m) => m.received.length === 1).length, 49)
  function i (m: FakeMember): number { return members.indexOf(m) }
})

test('two hubs on one broker behave as two processes', async (t) => {
  const broker = new MemoryBroker()
  const one = new ChannelHub({ layer: new MemoryLayer(broker) })
  const two = new ChannelHub({ layer: new MemoryLayer(broker) })
  t.teardown(async () => { await one.close(); await two.close() })
  const sender = new FakeMember('alice')
  const a2 = new FakeMember('alice')
  const b = new FakeMember('bob')
  await one.join(sender, 'room')
  await two.join(a2, 'room')
  await two.join(a2, 'other')
  await two.join(b, 'room')
  await one.broadcast(['other', 'room'], { text: 'hi' }, { sender })
  await settle()
  t.same(sender.received, [])
  t.same(a2.messages, [{ text: 'hi', is_mine: true, is_current: false }], 'one copy although in both groups')
  t.same(b.messages, [{ text: 'hi', is_mine: false, is_current: false }])

  await one.sendToUser('bob', { n: 1 })
  await one.disconnectUser('alice', 4000, 'bye')
  await settle()
  t.same(b.received.slice(1), ['{"n":1}'])
  t.same(a2.closed, { code: 4000, reason: 'bye' })
  t.same(sender.closed, { code: 4000, reason: 'bye' })

  t.equal(await one.size('room'), 3)
  t.equal(await two.size('room'), 3)
  t.equal(await one.size('nobody'), 0)
  await two.leave(b, 'room')
  t.equal(await one.size('room'), 2)
})

test('channel events reach each member once, locally and through the layer', async (t) => {
  const broker = new MemoryBroker()
  const one = new ChannelHub({ layer: new MemoryLayer(broker) })
  const two = new ChannelHub({ layer: new MemoryLayer(broker) })
  t.teardown(async () => { await one.close(); await two.close() })
  const here = new FakeMember('a')
  const there = new FakeMember('b')
  await one.join(here, 'x')
  await one.join(here, 'y')
  await two.join(there, 'x')
  await two.join(there, 'y')
  await one.sendEvent(['x', 'y'], 'refresh', { at: new Date(0) })
  await settle()
  t.same(here.events, [{ name: 'refresh', payload: { at: '1970-01-01T00:00:00.000Z' } }])
  t.same(there.events, [{ name: 'refresh', payload: { at: '1970-01-01T00:00:00.000Z' } }])
})

test('a malformed envelope is logged and ignored, never thrown', async (t) => {
  const logger = recordingLogger()
  let listener!: ChannelListener
  const layer: ChannelLayer = {
    name: 'fake',
    setListener (l) { listener = l },
    async subscribe () {},
    async unsubscribe () {},
    async publish () { return 1 },
    async close () {}
  }
  const hub = new ChannelHub({ layer, logger })
  t.teardown(() => hub.close())
  const m = new FakeMember('x')
  await hub.join(m, 'g')
  const bad = [
    'not json', '[]', 'null', '{"v":2,"o":"z","k":"b"}', '{"v":1,"o":"z","k":"b","g":"g","s":null,"m":"{}"}',
    '{"v":1,"o":"z","k":"b","g":["g"],"s":null,"m":"oops"}', '{"v":1,"o":"z","k":"zz"}',
    '{"v":1,"o":"z","k":"b","g":["other"],"s":null,"m":"{}"}', '{"v":1,"o":"z","k":"c","c":"x","r":1}'
  ]
  for (const envelope of bad) t.doesNotThrow(() => listener('g:g', envelope))
  t.equal(logger.warnings.length, bad.length)
  t.same(m.received, [])
  listener('g:g', '{"v":1,"o":"z","k":"b","g":["g"],"s":"x","m":"{\\"ok\\":1}"}')
  t.same(m.messages, [{ ok: 1, is_mine: true, is_current: false }], 'a good one after bad ones still arrives')
})

test('a member whose send throws does not stop delivery to the others', async (t) => {
  const logger = recordingLogger()
  const hub = new ChannelHub({ logger })
  t.teardown(() => hub.close())
  const broken = new FakeMember(null)
  broken.send = () => { throw new Error('socket gone') }
  const fine = new FakeMember(null)
  await hub.join(broken, 'g')
  await hub.join(fine, 'g')
  await hub.broadcast('g', { a: 1 })
  t.equal(fine.received.length, 1)
  t.equal(logger.warnings.length, 1)
})

test('bad arguments are refused with a coded error', async (t) => {
  const hub = new ChannelHub()
  t.teardown(() => hub.close())
  const m = new FakeMember(null)
  await t.rejects(hub.join(m, ''), { code: 'FST_CHANX_INVALID_CHANNEL_ARGUMENT' })
  t.throws(() => hub.broadcast('g', [1] as unknown as object), { code: 'FST_CHANX_INVALID_CHANNEL_ARGUMENT' })
  t.throws(() => hub.broadcast([5 as unknown as string], {}), { code: 'FST_CHANX_INVALID_CHANNEL_ARGUMENT' })
  await hub.close()
  await t.rejects(hub.join(m, 'g'), { code: 'FST_CHANX_CHANNEL_LAYER_CLOSED' })
})
