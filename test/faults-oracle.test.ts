import { test } from 'tap'
import { FaultClient, type Seen } from './helpers/faults/clients'
import { check } from './helpers/faults/oracle'
import type { Published } from './helpers/faults/publisher'

// The fault harness's oracle on hand-made timelines: each violation it must see, and what it must not call one.

function records (count: number, outcome: (n: number) => Published['outcome'] = () => 'ok'): Published[] {
  return Array.from({ length: count }, (_, i) => ({ phase: 'cut', start: 100 + i, end: 101 + i, outcome: outcome(i + 1), code: outcome(i + 1) === 'rejected' ? 'FST_X' : undefined }) as Published)
}

function client (seen: Seen[], groups = ['a'], multi: string[] = []): FaultClient {
  const c = new FaultClient(0, 'u0', groups, 0, multi)
  c.firstOpen = 0
  c.seen.push(...seen)
  return c
}

const open = (connection: number, at: number, failed: Record<string, string> = {}, userFailed: string | null = null): Seen =>
  ({ kind: 'open', connection, at, phase: 'cut', recovery: connection === 0 ? null : { recovered: Object.keys(failed).length === 0 && userFailed === null, reason: null, failed, userFailed } })
const msg = (n: number, connection = 0, stream = 'g:a', groups = [stream.slice(2)]): Seen => ({ kind: 'message', stream, n, connection, groups })

test('the oracle: every message once and in order, with replays after a resume, is clean', async (t) => {
  const c = client([open(0, 0), msg(1), msg(2), { kind: 'close', code: 1006, phase: 'cut' }, open(1, 500), msg(3, 1), msg(4, 1)])
  const { rows, violations } = check([c], new Map([['g:a', records(4)], ['u:u0', []]]), ['cut'])
  t.same(violations, [])
  t.match(rows.get('cut'), { published: 4, live: 2, replayed: 2, silent: 0, duplicated: 0, outOfOrder: 0, rejectedDelivered: 0, resumes: 1, notRecovered: 0, closes: { 1006: 1 } })
})

test('the oracle: a gap with no resume in between is silent, live or across a reconnect that said recovered', async (t) => {
  const live = client([open(0, 0), msg(1), msg(3)])
  t.match(check([live], new Map([['g:a', records(3)]]), ['cut']).rows.get('cut'), { silent: 1 })
  const across = client([open(0, 0), msg(1), open(1, 500), msg(3, 1)])
  t.match(check([across], new Map([['g:a', records(3)]]), ['cut']).rows.get('cut'), { silent: 1 })
  const tail = client([open(0, 0), msg(1)])
  t.match(check([tail], new Map([['g:a', records(2)]]), ['cut']).rows.get('cut'), { silent: 1 }, 'a message never delivered at the end')
})

test('the oracle: a gap is reported only by a resume after its publish began, that failed that very stream', async (t) => {
  const reported = client([open(0, 0), msg(1), open(1, 500, { a: 'window_exceeded' }), msg(3, 1)])
  t.match(check([reported], new Map([['g:a', records(3)]]), ['cut']).rows.get('cut'), { silent: 0, reported: { window_exceeded: 1 } })
  const otherStream = client([open(0, 0), msg(1), open(1, 500, { b: 'unavailable' }), msg(3, 1)])
  t.match(check([otherStream], new Map([['g:a', records(3)]]), ['cut']).rows.get('cut'), { silent: 1 })
  const tooEarly = client([open(0, 0), msg(1), open(1, 50, { a: 'unavailable' }), msg(3, 1)])
  t.match(check([tooEarly], new Map([['g:a', records(3)]]), ['cut']).rows.get('cut'), { silent: 1 }, 'a resume before the publish began cannot speak for it')
  const user = client([open(0, 0), msg(1, 0, 'u:u0'), open(1, 500, {}, 'epoch_changed'), msg(3, 1, 'u:u0')])
  t.match(check([user], new Map([['u:u0', records(3)]]), ['cut']).rows.get('cut'), { silent: 0, reported: { epoch_changed: 1 } })
})

test('the oracle: duplicates, out of order, rejected publishes delivered; unknown and earlier messages are optional', async (t) => {
  const c = client([open(0, 0), msg(1), msg(3), msg(2), msg(3), msg(4), msg(6)])
  const { rows, violations } = check([c], new Map([['g:a', records(6, (n) => n === 4 ? 'rejected' : n === 5 ? 'unknown' : 'ok')]]), ['cut'])
  t.match(rows.get('cut'), { duplicated: 1, outOfOrder: 1, rejectedDelivered: 1, silent: 0, rejected: 1, unknown: 1 })
  t.same(violations.map((v) => `${v.kind} ${v.n}`), ['outOfOrder 2', 'duplicated 3', 'rejectedDelivered 4'])
  const lateRejected = client([open(0, 0), msg(1), msg(3), msg(2)])
  t.match(check([lateRejected], new Map([['g:a', records(3, (n) => n === 2 ? 'rejected' : 'ok')]]), ['cut']).rows.get('cut'),
    { outOfOrder: 0, rejectedDelivered: 1 }, 'a rejected publish that runs late is not also out of order')
  const late = client([open(0, 1000), msg(60)])
  late.firstOpen = 1000
  t.match(check([late], new Map([['g:a', records(60)]]), ['cut']).rows.get('cut'), { silent: 0 }, 'published before the client first opened')
})

test('the oracle: a broadcast to several groups is a stream of the clients in any of them, reported by a failure of any', async (t) => {
  const both = new FaultClient(0, 'u0', ['a', 'b'], 0, ['m:a,b', 'm:c,d'])
  t.same(both.streams, ['g:a', 'g:b', 'u:u0', 'm:a,b'], 'not in m:c,d')
  both.firstOpen = 0
  both.seen.push(open(0, 0), msg(1, 0, 'm:a,b'), open(1, 500, { b: 'window_exceeded' }), msg(3, 1, 'm:a,b'), msg(3, 1, 'm:a,b'))
  const { rows } = check([both], new Map([['m:a,b', records(3)]]), ['cut'])
  t.match(rows.get('cut'), { silent: 0, reported: { window_exceeded: 1 }, duplicated: 1, resumes: 1, notRecovered: 1 })
})

test('the oracle: a partly published broadcast (err.groups) may arrive through a group that took it, never through another', async (t) => {
  const list = records(3).map((r, i) => i === 1 ? { ...r, outcome: 'partial' as const, code: 'FST_X', published: ['a'] } : r)
  const through = client([open(0, 0), msg(1, 0, 'm:a,b', ['a']), msg(2, 0, 'm:a,b', ['a']), msg(3, 0, 'm:a,b', ['a'])], ['a', 'b'], ['m:a,b'])
  t.match(check([through], new Map([['m:a,b', list]]), ['cut']).rows.get('cut'), { rejected: 1, partial: 1, rejectedDelivered: 0, silent: 0, live: 3 })
  const missing = client([open(0, 0), msg(1, 0, 'm:a,b', ['b']), msg(3, 0, 'm:a,b', ['b'])], ['b'], ['m:a,b'])
  t.match(check([missing], new Map([['m:a,b', list]]), ['cut']).rows.get('cut'), { rejectedDelivered: 0, silent: 0 }, 'not required')
  const wrong = client([open(0, 0), msg(1, 0, 'm:a,b', ['b']), msg(2, 0, 'm:a,b', ['b']), msg(3, 0, 'm:a,b', ['b'])], ['b'], ['m:a,b'])
  const { rows, violations } = check([wrong], new Map([['m:a,b', list]]), ['cut'])
  t.match(rows.get('cut'), { rejectedDelivered: 1 })
  t.match(violations[0]?.detail, /published only to a, and it came through b/)
})
