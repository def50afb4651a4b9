import { test } from 'tap'
import { ChannelHub } from '../plugin/channels/hub'
import { MemoryHistory } from '../plugin/channels/history/memory-store'
import type { HistoryEntry } from '../plugin/channels/history/model'
import { framePositions, parsePositioned } from '../plugin/channels/history/positions'
import { createHistoryStore } from '../plugin/channels/history/setup'
import { createRedisLayer } from '../plugin/channels/redis/layer'
import type { ChannelLogger } from '../plugin/channels/layer'
import { newRecoveryToken, readResume, tokenFits } from '../plugin/connection/resume'
import { RedisServer, redisSkipReason } from './helpers/redis'
import { FakeMember, settle } from './helpers/members'

const skip = redisSkipReason()
const SECRET = 'a-channel-secret-of-at-least-32-bytes!'

function entry (offset: number, time = Date.now()): HistoryEntry {
  return { offset, time, body: `{"n":${offset}}`, groups: ['g'], senderKey: null, sender: null, excluded: false }
}

function keep (store: MemoryHistory, count: number, time?: number): void {
  for (let i = 0; i < count; i++) store.keep('g:g', entry(store.next('g:g').offset, time))
}

test('a ring keeps the last `size` entries within `maxAge`, and says which positions it cannot serve', async (t) => {
  const store = new MemoryHistory({ size: 3, maxAge: 60_000 })
  t.teardown(() => store.close())
  const start = await store.position('g:g')
  t.equal(start.offset, 0)
  keep(store, 5)
  const { epoch } = start
  t.same((await store.read('g:g', { offset: 2, epoch })).entries?.map((e) => e.offset), [3, 4, 5])
  t.same((await store.read('g:g', { offset: 5, epoch })).entries, [])
  t.match(await store.read('g:g', { offset: 1, epoch }), { entries: null, lost: 'window_exceeded', position: { offset: 5, epoch } })
  t.match(await store.read('g:g', { offset: 2, epoch: 'other' }), { entries: null, lost: 'epoch_changed' })
  t.match(await store.read('g:g', { offset: 9, epoch }), { entries: null, lost: 'epoch_changed' }, 'a position past the end is not this history\'s')

  const aged = new MemoryHistory({ size: 100, maxAge: 1000 })
  t.teardown(() => aged.close())
  const agedStart = await aged.position('g:g')
  keep(aged, 2, Date.now() - 1500)
  keep(aged, 1)
  t.match(await aged.read('g:g', agedStart), { lost: 'window_exceeded' }, 'older than maxAge is gone')
  t.same((await aged.read('g:g', { offset: 2, epoch: agedStart.epoch })).entries?.map((e) => e.offset), [3])
})

test('positions are read back from frames; a positioned publication with a bad epoch is refused', async (t) => {
  t.same(framePositions('{"a":1,"chanx_pos":{"x":[3,"ab"],"y":[9,"cd"]},"is_mine":false,"is_current":false}'), new Map([['x', 3], ['y', 9]]))
  t.same(framePositions('{"a":"\\"chanx_pos\\":{}","chanx_upos":[4,"ab"]}'), new Map([['', 4]]))
  t.equal(framePositions('{"a":1,"is_mine":false,"is_current":false}'), null)
  t.same(parsePositioned('~7~ab12~0~~{"v":1}'), { offset: 7, epoch: 'ab12', record: '0~~{"v":1}', all: null })
  t.same(parsePositioned('~7~ab12~P7,ab12;3,cd~0~~{"v":1}'), { offset: 7, epoch: 'ab12', record: '0~~{"v":1}', all: [{ offset: 7, epoch: 'ab12' }, { offset: 3, epoch: 'cd' }] },
    'a broadcast kept for several groups at once carries each one\'s position')
  t.equal(parsePositioned('~7~ab12~P7,ab12;3,c"d~0~~{}'), null, 'every epoch of it is checked')
  t.equal(parsePositioned('~7~ab12~P7,ab12;x,cd~0~~{}'), null)
  t.equal(parsePositioned('~7~a"b~0~~{}'), null, 'an epoch goes into frames as it is: only [0-9a-z]')
  t.equal(parsePositioned('~0~ab~0~~{}'), null)
  t.equal(parsePositioned('{"v":1}'), null)
})

test('resume parameters: malformed, foreign or oversized ones are invalid; a token fits only its user', async (t) => {
  const token = newRecoveryToken('alice')
  t.ok(tokenFits(token, 'alice'))
  t.notOk(tokenFits(token, 'bob'))
  t.notOk(tokenFits(token, null))
  const param = (value: unknown) => '/ws?chanx_recover=' + Buffer.from(JSON.stringify(value)).toString('base64url')
  t.equal(readResume('/ws?token=x'), null)
  t.same(readResume(param({ t: token, g: { a: [1, 'ep'] }, u: [2, 'ep'] })), { token, groups: new Map([['a', { offset: 1, epoch: 'ep' }]]), user: { offset: 2, epoch: 'ep' } })
  for (const bad of [{ t: 'short', g: {} }, { t: token, g: { a: [1.5, 'ep'] } }, { t: token, g: { a: [1, 'E"P'] } }, { t: token, g: [] }, { t: token, u: 'x' }]) {
    t.equal(readResume(param(bad)), 'invalid', JSON.stringify(bad))
  }
  t.equal(readResume('/ws?chanx_recover=%7B'), 'invalid')
  t.equal(readResume('/ws?chanx_recover=' + 'A'.repeat(70_000)), 'invalid')
})

test('over Redis with a channel secret: positioned delivery across hubs, replay checked, forged publications dropped', { skip }, async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.stop())
  const reasons: string[] = []
  const logger: ChannelLogger = { warn (obj: any) { if (obj.reason !== undefined) reasons.push(obj.reason) }, error () {} }
  const limits = { size: 100, maxAge: 60_000 }
  const one = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }), secret: SECRET })
  const two = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }), secret: SECRET, logger })
  t.teardown(async () => { await one.close(); await two.close() })
  one.useHistory(createHistoryStore(one.layer, limits))
  two.useHistory(createHistoryStore(two.layer, limits))
  const sender = new FakeMember('alice')
  const here = new FakeMember('bob')
  const there = new FakeMember('carol')
  await one.join(sender, 'room')
  await one.join(here, 'room')
  await two.join(there, 'room')
  const start = await two.history!.position('g:room')

  await one.broadcast('room', { action: 'a' }, { sender })
  await one.sendToUser('carol', { action: 'direct' })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(sender.received, [], 'excludeSelf holds for the sender, delivered on Redis\'s echo')
  t.equal(here.received[0], `{"action":"a","chanx_pos":{"room":[1,"${start.epoch}"]},"is_mine":false,"is_current":false}`)
  t.equal(there.received[0], here.received[0])
  t.match(there.received[1], /^\{"action":"direct","chanx_upos":\[1,"[0-9a-f]{12}"\]\}$/)

  const read = await two.history!.read('g:room', start)
  t.same(read.entries?.map((e) => [e.offset, e.body, e.senderKey, e.excluded]), [[1, `{"action":"a","chanx_pos":{"room":[1,"${start.epoch}"]}}`, 'alice', true]])

  const { Redis } = await import('ioredis')
  const raw = new Redis(redis.url)
  t.teardown(() => raw.disconnect())
  await raw.publish('chanx:{g:room}', `~2~${start.epoch}~0~~{"v":1,"o":"x","k":"b","g":["room"],"s":null,"m":"{\\"forged\\":1}"}`)
  await raw.xadd('chanx:{g:room}:history', '*', 'p', `~2~${start.epoch}~0~~{"v":1,"o":"x","k":"b","g":["room"],"s":null,"m":"{\\"forged\\":1}"}`)
  await raw.hincrby('chanx:{g:room}:meta', 'o', 1)
  await settle()
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(there.received.length, 2, 'an unsigned publication is not delivered')
  t.ok(reasons.includes('bad positioned publication'))
  t.match(await two.history!.read('g:room', start), { entries: null, lost: 'window_exceeded' }, 'a forged entry is a hole, not a message')
})
