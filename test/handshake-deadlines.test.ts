import { test } from 'tap'
import { HandshakeDeadlines, TIMED_OUT } from '../plugin/handshake/deadlines'

const never = new Promise<string>(() => {})
const after = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

test('one timer serves every pending handshake: each times out at its own deadline, settled ones never do', async (t) => {
  const deadlines = new HandshakeDeadlines<string>(60)
  const started = Date.now()
  const first = deadlines.race(never)
  const quick = deadlines.race(Promise.resolve('ok'))
  let late!: (value: string) => void
  const lateOne = deadlines.race(new Promise<string>((resolve) => { late = resolve }))
  await after(30)
  const second = deadlines.race(never)
  t.equal(await quick, 'ok', 'a pipeline that settles in time gives its value')
  t.equal(await first, TIMED_OUT)
  const firstAt = Date.now() - started
  t.ok(firstAt >= 55, `the first timed out after its 60 ms (${firstAt} ms)`)
  t.equal(await lateOne, TIMED_OUT, 'a pipeline still pending at its deadline times out')
  late('too late')
  t.equal(await second, TIMED_OUT)
  const secondAt = Date.now() - started
  t.ok(secondAt >= 85, `the one started 30 ms later timed out 60 ms after its own start (${secondAt} ms)`)
  t.equal(await deadlines.race(Promise.resolve('again')), 'again', 'the timer re-arms for handshakes after an expiry')
})

test('no timer holds the process once every pending handshake has settled', async (t) => {
  const deadlines = new HandshakeDeadlines<string>(60_000)
  const pending = deadlines.race(after(5).then(() => 'ok'))
  t.equal(deadlines.holding, true, 'a pending handshake holds the process')
  t.equal(await pending, 'ok')
  t.equal(deadlines.holding, false, 'a closing app is not held for the timeout')
})

test('an idle timer is kept unref\'d: the next handshake refs it again and still times out on time', async (t) => {
  const deadlines = new HandshakeDeadlines<string>(60)
  const timer = (): unknown => (deadlines as unknown as { timer: unknown }).timer
  t.equal(await deadlines.race(Promise.resolve('ok')), 'ok')
  const kept = timer()
  t.not(kept, null, 'the timer is kept for the next handshake')
  t.equal(deadlines.holding, false)
  await after(20)
  const started = Date.now()
  const slow = deadlines.race(never)
  t.equal(timer(), kept, 'the same timer serves it')
  t.equal(deadlines.holding, true, 'a pending handshake refs it again')
  t.equal(await slow, TIMED_OUT)
  const at = Date.now() - started
  t.ok(at >= 55, `it timed out 60 ms after its own start, not at the kept timer's first expiry (${at} ms)`)
  t.equal(timer(), null, 'with nothing pending, the expired timer is dropped')
  t.equal(await deadlines.race(Promise.resolve('again')), 'again')
})
