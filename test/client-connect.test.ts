import { test } from 'tap'
import { ChanxRefusal, createClient } from '../plugin/client'
import { clientRoute, startServer } from './helpers/client-server'

type Route = typeof clientRoute

test('connect resolves once the authentication message says 200, and messages are typed and routed', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const client = createClient<Route>(server.url(), { getToken: () => server.sign('alice') })
  t.teardown(() => client.close())
  const opened: unknown[] = []
  client.on('open', (info) => opened.push(info))
  await client.connect()
  t.equal(client.state, 'open')
  t.same(opened, [{ reconnected: false }])
  const me = new Promise((resolve) => client.on('message:me', (message) => resolve(message.payload.sub)))
  client.send('whoami', null)
  t.equal(await me, 'alice')
})

test('a token sent as a bearer subprotocol authenticates too', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const client = createClient<Route>(server.url(), { getToken: () => server.sign('bob'), tokenIn: 'protocol' })
  t.teardown(() => client.close())
  await client.connect()
  t.same(await client.request('whoami', null), { action: 'me', payload: { sub: 'bob' }, id: 1 })
})

const refusals = [
  { name: 'anonymous (401, no token)', room: 'lobby', token: false, status: 401, statusText: 'Unauthorized', detail: 'Authentication credentials were not provided.', closeCode: 4401 },
  { name: 'forbidden object (403)', room: 'secret', token: true, status: 403, statusText: 'Forbidden', detail: 'You do not have permission to perform this action.', closeCode: 4403 },
  { name: 'missing object (404)', room: 'missing', token: true, status: 404, statusText: 'Not Found', detail: 'Not found.', closeCode: 4404 },
  { name: 'failing loader (500)', room: 'broken', token: true, status: 500, statusText: 'Internal Server Error', detail: 'Internal server error', closeCode: 4500 }
]

for (const refusal of refusals) {
  test(`connect rejects with a typed refusal and stops: ${refusal.name}`, async (t) => {
    const server = await startServer()
    t.teardown(() => server.close())
    const client = createClient<Route>(server.url(refusal.room), refusal.token ? { getToken: () => server.sign('alice') } : {})
    t.teardown(() => client.close())
    const events: string[] = []
    client.on('refused', (r) => events.push(`refused ${r.status}`))
    client.on('reconnecting', () => events.push('reconnecting'))
    client.on('closed', (info) => events.push(`closed ${info.code}`))
    const error = await client.connect().then(() => null, (err: unknown) => err)
    t.ok(error instanceof ChanxRefusal)
    t.match(error, { status: refusal.status, statusText: refusal.statusText, detail: refusal.detail, closeCode: refusal.closeCode, code: 'FST_CHANX_CLIENT_REFUSED' })
    t.same(events, [`refused ${refusal.status}`, `closed ${refusal.closeCode}`], 'refused, then closed: no reconnection')
    t.equal(client.state, 'closed')
  })
}

test('connect rejects with 429 / 4429 when the user already holds every slot', async (t) => {
  const server = await startServer(0, { maxConnectionsPerUser: 1 })
  t.teardown(() => server.close())
  const first = createClient<Route>(server.url(), { getToken: () => server.sign('alice') })
  t.teardown(() => first.close())
  await first.connect()
  const second = createClient<Route>(server.url(), { getToken: () => server.sign('alice') })
  t.teardown(() => second.close())
  await t.rejects(second.connect(), { name: 'ChanxRefusal', status: 429, statusText: 'Too Many Requests', detail: 'Too many connections', closeCode: 4429 })
})

test('connect rejects with 503 / 4503 when the handshake times out', async (t) => {
  const server = await startServer(0, { handshakeTimeout: 50 })
  t.teardown(() => server.close())
  const client = createClient<Route>(server.url('slow'), { getToken: () => server.sign('alice') })
  t.teardown(() => client.close())
  await t.rejects(client.connect(), { name: 'ChanxRefusal', status: 503, statusText: 'Service Unavailable', detail: 'Handshake timed out', closeCode: 4503 })
})

test('a 4401 on connect asks getToken once for a fresh token, and stops if that one fails too', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const reasons: string[] = []
  const client = createClient<Route>(server.url(), { getToken: (reason) => { reasons.push(reason); return reasons.length === 1 ? 'not-a-jwt' : server.sign('alice') } })
  t.teardown(() => client.close())
  await client.connect()
  t.same(reasons, ['connect', 'expired'], 'the refused token was replaced once')
  const failing = createClient<Route>(server.url(), { getToken: (reason) => { reasons.push(reason); return 'not-a-jwt' } })
  t.teardown(() => failing.close())
  await t.rejects(failing.connect(), { name: 'ChanxRefusal', status: 401, detail: 'Invalid token', closeCode: 4401 })
  t.same(reasons.slice(2), ['connect', 'expired'], 'one refresh, then it stopped')
})

test('a server that is not there is retried with backoff, never reported as a bare 1006', async (t) => {
  const server = await startServer()
  const port = server.port
  await server.close()
  const client = createClient<Route>(`ws://127.0.0.1:${port}/ws/rooms/lobby`, { backoff: { initialDelay: 20, maxDelay: 40, maxAttempts: 2 } })
  const codes: number[] = []
  client.on('reconnecting', (info) => codes.push(info.code))
  const error = await client.connect().then(() => null, (err: unknown) => err)
  t.ok(error instanceof ChanxRefusal)
  t.match(error, { status: 0, statusText: '', closeCode: 1006, message: 'The connection closed (1006) before the handshake finished' })
  t.same(codes, [1006, 1006], 'two retries, then it gave up')
})
