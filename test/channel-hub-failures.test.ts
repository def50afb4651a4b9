import { test } from 'tap'
import { ChannelHub, type ChannelLayer, type ChannelListener, type ChannelLogger } from '../plugin'
import { FakeMember, settle } from './helpers/members'

/**
 * ChannelHub when its layer, its members or another process misbehave: counts that time out or fail,
 * failures that are logged rather than thrown, and envelopes from another process, well formed or not.
 */

interface Logged { level: 'warn' | 'error', msg: string, obj: Record<string, unknown> }

function recordingLogger (): ChannelLogger & { lines: Logged[] } {
  const lines: Logged[] = []
  return {
    lines,
    warn (obj, msg) { lines.push({ level: 'warn', msg: String(msg), obj: obj as Record<string, unknown> }) },
    error (obj, msg) { lines.push({ level: 'error', msg: String(msg), obj: obj as Record<string, unknown> }) }
  }
}

/** A layer that delivers nothing by itself; the test plays the other processes through `deliver`. */
class ScriptedLayer implements ChannelLayer {
  readonly name = 'scripted'
  listener!: ChannelListener
  receivers = 1
  published: Array<[string, string]> = []
  failPublish: Error | null = null
  failSubscribe: ((channel: string) => boolean) = () => false
  failUnsubscribe: Error | null = null

  setListener (listener: ChannelListener): void { this.listener = listener }
  async subscribe (channel: string): Promise<void> {
    if (this.failSubscribe(channel)) throw new Error(`cannot subscribe to ${channel}`)
  }

  async unsubscribe (): Promise<void> {
    if (this.failUnsubscribe !== null) throw this.failUnsubscribe
  }

  async publish (channel: string, envelope: string): Promise<number> {
    if (this.failPublish !== null) throw this.failPublish
    this.published.push([channel, envelope])
    return this.receivers
  }

  async close (): Promise<void> {}
  deliver (channel: string, envelope: string): void { this.listener(channel, envelope) }
}

function hubOn (t: { teardown (fn: () => unknown): void }, options: { sizeTimeout?: number } = {}) {
  const layer = new ScriptedLayer()
  const logger = recordingLogger()
  const hub = new ChannelHub({ layer, logger, ...options })
  t.teardown(() => hub.close())
  return { hub, layer, logger }
}

test('size() rejects with FST_CHANX_CHANNEL_LAYER_TIMEOUT when a process that got the query never answers', async (t) => {
  const { hub, layer } = hubOn(t, { sizeTimeout: 50 })
  layer.receivers = 2
  // The hub's timers are unref'd (a pending count must not keep a process alive): keep this one alive.
  const keepAlive = setTimeout(() => {}, 1000)
  t.teardown(() => clearTimeout(keepAlive))
  await t.rejects(hub.size('room'), {
    code: 'FST_CHANX_CHANNEL_LAYER_TIMEOUT',
    message: 'fastify-chanx: counting the members of "room" did not complete within 50 ms'
  })
})

test('size() adds up the answers of every process that got the query, its own included', async (t) => {
  const { hub, layer } = hubOn(t)
  const member = new FakeMember(null)
  await hub.join(member, 'room')
  layer.receivers = 2
  const counting = hub.size('room')
  await settle()
  const [channel, query] = layer.published.find(([c]) => c === 'g:room')!
  t.equal(channel, 'g:room')
  const id = Number(/"i":(\d+)/.exec(query)![1])
  // Our own query comes back to us (this process counts its one member), and another process answers 3.
  layer.deliver('g:room', query)
  layer.deliver('r:x', `{"v":1,"o":"other","k":"a","i":${id},"n":3}`)
  t.equal(await counting, 4)
  // An answer to a query nobody waits for any more is ignored.
  layer.deliver('r:x', `{"v":1,"o":"other","k":"a","i":${id},"n":3}`)
})

test('size() rejects with the layer\'s error when the query cannot be published', async (t) => {
  const { hub, layer } = hubOn(t)
  layer.failPublish = new Error('redis down')
  await t.rejects(hub.size('room'), { message: 'redis down' })
})

test('close() rejects a size() still waiting with FST_CHANX_CHANNEL_LAYER_CLOSED', async (t) => {
  const { hub, layer } = hubOn(t, { sizeTimeout: 5000 })
  layer.receivers = 2
  const counting = hub.size('room')
  await settle()
  await hub.close()
  await t.rejects(counting, { code: 'FST_CHANX_CHANNEL_LAYER_CLOSED' })
})

test('a member whose onEvent throws is logged with the event; the other members still get it', async (t) => {
  const { hub, logger } = hubOn(t)
  const broken = new FakeMember('a')
  broken.onEvent = () => { throw new Error('handler broke') }
  const silent = new FakeMember('b')
  ;(silent as { onEvent?: unknown }).onEvent = undefined
  const fine = new FakeMember('c')
  for (const member of [broken, silent, fine]) await hub.join(member, 'room')
  await hub.sendEvent('room', 'refresh', { n: 1 })
  t.same(fine.events, [{ name: 'refresh', payload: { n: 1 } }])
  t.same(logger.lines.map((l) => [l.level, l.msg, l.obj.event, l.obj.member]), [['error', 'fastify-chanx: a channel event handler failed', 'refresh', broken.id]])
})

test('a member whose close throws is logged by disconnectUser; the user\'s other sockets still close', async (t) => {
  const { hub, logger } = hubOn(t)
  const broken = new FakeMember('alice')
  broken.close = () => { throw new Error('already gone') }
  const other = new FakeMember('alice')
  await hub.attach(broken)
  await hub.attach(other)
  await hub.disconnectUser('alice', 4000, 'bye')
  t.same(other.closed, { code: 4000, reason: 'bye' })
  t.same(logger.lines.map((l) => [l.level, l.msg, l.obj.member]), [['warn', 'fastify-chanx: a member failed to close', broken.id]])
})

test('an unsubscribe the layer refuses is logged, and the leave still happens', async (t) => {
  const { hub, layer, logger } = hubOn(t)
  const member = new FakeMember(null)
  await hub.join(member, 'room')
  layer.failUnsubscribe = new Error('redis down')
  await hub.leave(member, 'room')
  t.same(hub.groupsOf(member), [])
  t.same(logger.lines.map((l) => [l.msg, l.obj.channel]), [['fastify-chanx: could not unsubscribe from a channel', 'g:room']])
})

test('a join whose user channel cannot be subscribed rejects and leaves the member out of the group', async (t) => {
  const { hub, layer } = hubOn(t)
  layer.failSubscribe = (channel) => channel.startsWith('u:')
  const member = new FakeMember('alice')
  await t.rejects(hub.join(member, 'room'), { message: 'cannot subscribe to u:alice' })
  await settle()
  t.same(hub.groupsOf(member), [])
})

test('a size query from another process is answered with the local count; a failed answer is logged', async (t) => {
  const { hub, layer, logger } = hubOn(t)
  await hub.join(new FakeMember(null), 'room')
  await hub.join(new FakeMember(null), 'room')
  layer.deliver('g:room', '{"v":1,"o":"other","k":"q","i":7}')
  await settle()
  const [replyChannel, answer] = layer.published.at(-1)!
  t.equal(replyChannel, 'r:other')
  t.match(answer, /"k":"a","i":7,"n":2\}$/)
  layer.failPublish = new Error('redis down')
  layer.deliver('g:room', '{"v":1,"o":"other","k":"q","i":8}')
  await settle()
  t.same(logger.lines.map((l) => l.msg), ['fastify-chanx: could not answer a group size query'])
})

test('events, user messages and closes from another process reach the local members once', async (t) => {
  const { hub, layer, logger } = hubOn(t)
  const alice = new FakeMember('alice')
  await hub.join(alice, 'x')
  await hub.join(alice, 'y')
  // An event to x and y arrives on both channels: heard on the first only.
  layer.deliver('g:x', '{"v":1,"o":"other","k":"e","g":["x","y"],"n":"refresh","p":{"n":1}}')
  layer.deliver('g:y', '{"v":1,"o":"other","k":"e","g":["x","y"],"n":"refresh","p":{"n":1}}')
  layer.deliver('u:alice', '{"v":1,"o":"other","k":"u","m":"{\\"hi\\":1}"}')
  layer.deliver('u:alice', '{"v":1,"o":"other","k":"c","c":4001,"r":"kicked"}')
  // To a channel with no local member: nothing to do, nothing logged.
  layer.deliver('g:empty', '{"v":1,"o":"other","k":"e","g":["empty"],"n":"refresh","p":null}')
  t.same(alice.events, [{ name: 'refresh', payload: { n: 1 } }])
  t.same(alice.received, ['{"hi":1}'])
  t.same(alice.closed, { code: 4001, reason: 'kicked' })
  t.same(logger.lines, [])
})

test('envelopes of a known kind with the wrong fields or on the wrong channel are logged and ignored', async (t) => {
  const { hub, layer, logger } = hubOn(t)
  const alice = new FakeMember('alice')
  await hub.join(alice, 'x')
  const bad: Array<[string, string]> = [
    ['g:x', '{"v":1,"o":"other","k":"e","g":"x","n":"refresh"}'],
    ['g:x', '{"v":1,"o":"other","k":"e","g":["y"],"n":"refresh"}'],
    ['u:alice', '{"v":1,"o":"other","k":"e","g":["x"],"n":"refresh"}'],
    ['g:x', '{"v":1,"o":"other","k":"u","m":"{}"}'],
    ['g:x', '{"v":1,"o":"other","k":"c","c":4000,"r":"x"}'],
    ['g:x', '{"v":1,"o":"other","k":"q","i":"1"}'],
    ['r:x', '{"v":1,"o":"other","k":"a","i":1}'],
    ['g:x', '{"v":1,"o":"other","k":"b","g":["x"],"s":5,"m":"{}"}']
  ]
  for (const [channel, envelope] of bad) layer.deliver(channel, envelope)
  t.equal(logger.lines.length, bad.length)
  t.ok(logger.lines.every((l) => l.msg === 'fastify-chanx: ignored a malformed channel envelope'))
  t.same(alice.events, [])
  t.same(alice.received, [])
  t.equal(alice.closed, null)
})

test('a broadcast or event to no group delivers and publishes nothing; groups of another type are refused', async (t) => {
  const { hub, layer } = hubOn(t)
  await hub.broadcast([], { a: 1 })
  await hub.sendEvent([], 'refresh', null)
  t.same(layer.published, [])
  t.throws(() => hub.broadcast(5 as unknown as string, {}), {
    code: 'FST_CHANX_INVALID_CHANNEL_ARGUMENT',
    message: 'fastify-chanx: groups must be a group name or an array of them'
  })
})
