import { test } from 'tap'
import WebSocket from 'ws'
import { buildRecoveryApp, listen, nextOpen, openClient, TcpProxy, until } from './helpers/recovery'
import { ResumeBudget } from '../plugin/connection/resume-budget'

/** Opens a raw socket and resolves with its authentication message and close code (null while open). */
function handshake (port: number, query: string): Promise<{ auth: Record<string, any>, ws: WebSocket, closed: Promise<number> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?${query}`)
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => resolve({ auth: JSON.parse(String(data)), ws, closed }))
    ws.once('error', reject)
  })
}

test('a burst of resumes from one user is refused 4429 past the budget, before any history read, while another user resumes', async (t) => {
  const app = await buildRecoveryApp({
    history: { size: 100, maxAge: 60_000 },
    // One token per 100 s: no refill within the test, however slow the machine.
    resumeBudget: { perUser: { resumesPerSecond: 0.01, burst: 3 }, perIp: false }
  })
  const port = await listen(t, app)
  const store = app.chanx.hub.history!
  let reads = 0
  const read = store.read.bind(store)
  const position = store.position.bind(store)
  store.read = (...args) => { reads++; return read(...args) }
  store.position = (...args) => { reads++; return position(...args) }

  const query = (sub: string, resume?: unknown): string => 'token=' + app.jwt.sign({ sub }) +
    (resume === undefined ? '' : '&chanx_recover=' + Buffer.from(JSON.stringify(resume)).toString('base64url'))
  const first = await handshake(port, query('mallory'))
  first.ws.close()
  const recovery = first.auth.chanx_recovery
  const resume = { t: recovery.token, g: recovery.positions }

  for (let i = 0; i < 3; i++) {
    const { auth, ws } = await handshake(port, query('mallory', resume))
    t.equal(auth.payload.status_code, 200, `resume ${i + 1} is within the budget`)
    t.equal(auth.chanx_recovery.recovered, true)
    ws.close()
  }
  const before = reads
  const refused = await handshake(port, query('mallory', resume))
  t.same(refused.auth.payload, { status_code: 429, status_text: 'Too Many Requests', data: { detail: 'Too many reconnections with a resume; retry later.' } })
  t.equal(await refused.closed, 4429)
  t.equal(reads, before, 'the refused resume read no history')
  const plain = await handshake(port, query('mallory'))
  t.equal(plain.auth.payload.status_code, 200, 'a handshake without a resume is not charged')
  plain.ws.close()

  const bob = await handshake(port, query('bob'))
  bob.ws.close()
  const other = await handshake(port, query('bob', { t: bob.auth.chanx_recovery.token, g: bob.auth.chanx_recovery.positions }))
  t.equal(other.auth.payload.status_code, 200, 'another user still resumes')
  t.equal(other.auth.chanx_recovery.recovered, true)
  other.ws.close()
})

test('a real client refused for its budget keeps its positions and recovers in full after the refill', async (t) => {
  const app = await buildRecoveryApp({
    history: { size: 100, maxAge: 60_000 },
    resumeBudget: { perUser: { resumesPerSecond: 2, burst: 1 }, perIp: false }
  }, new Map([['alice', ['feed']]]))
  const proxy = await new TcpProxy(await listen(t, app)).start()
  t.teardown(() => proxy.close())
  const { client, messages } = openClient(t, app, proxy, 'alice')
  const codes: number[] = []
  client.on('reconnecting', ({ code }) => { codes.push(code) })
  const tick = (n: number): Promise<unknown> => app.chanx.broadcast('feed', { action: 'tick', payload: { n } })

  await client.connect()
  await tick(1)
  await until(() => messages.length === 1, 'the first tick')
  proxy.cut()
  await tick(2)
  let info = await nextOpen(client)
  t.match(info.recovery, { recovered: true }, 'the first resume spends the one token')
  proxy.cut()
  await tick(3)
  await tick(4)
  info = await nextOpen(client)
  t.match(info.recovery, { recovered: true }, 'recovered after the refill')
  t.ok(codes.includes(4429), `refused at least once meanwhile (${codes.join(', ')})`)
  await until(() => messages.length === 4, 'the replay')
  t.same(messages.map((m) => m.payload.n), [1, 2, 3, 4], 'every message once, in order')
})

test('resumeBudget is checked at registration', async (t) => {
  for (const resumeBudget of [null, 5, { perUser: { resumesPerSecond: 0, burst: 1 } }, { perIp: { resumesPerSecond: 1, burst: 0.5 } }, { perUsers: false }]) {
    await t.rejects(buildRecoveryApp({ resumeBudget: resumeBudget as never }), { code: 'FST_CHANX_INVALID_OPTION', message: /option resumeBudget/ })
  }
})

test('the budget\'s memory is bounded: refilled buckets are dropped', async (t) => {
  const budget = new ResumeBudget({ perUser: { resumesPerSecond: 1, burst: 2 }, perIp: null })
  let taken = 0
  for (let i = 0; i < 10_000; i++) if (budget.take('user' + i, '127.0.0.1', 0)) taken++
  t.equal(taken, 10_000)
  t.equal(budget.size.users, 10_000)
  t.equal(budget.take('late', undefined, 1000), true)
  t.equal(budget.size.users, 10_001, 'none has refilled after 1 s')
  t.equal(budget.take('later', undefined, 2000), true)
  t.equal(budget.size.users, 2, 'every refilled bucket was dropped (2 s at 1/s refills a burst of 2)')
  t.equal(budget.take('later', undefined, 2000), true)
  t.equal(budget.take('later', undefined, 2000), false, 'a bucket still counts once the others were swept')
})
