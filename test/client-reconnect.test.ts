import { test, type Test } from 'tap'
import { ChanxClientError, createClient, type ChanxClient } from '../plugin/client'
import { clientRoute, startServer, type ClientServer } from './helpers/client-server'

type Route = typeof clientRoute
const FAST = { initialDelay: 20, maxDelay: 40 }

/** What the client did after the server closed its socket: the events in order, up to `open` or `closed`. */
function nextOutcome (client: ChanxClient<Route>): Promise<string[]> {
  const events: string[] = []
  return new Promise((resolve) => {
    const offs = [
      client.on('reconnecting', (info) => events.push(`reconnecting ${info.code}`)),
      client.on('refused', (refusal) => events.push(`refused ${refusal.status}`)),
      client.on('open', (info) => { events.push(`open reconnected=${info.reconnected}`); done() }),
      client.on('closed', (info) => { events.push(`closed ${info.code} ${info.reason}`); done() })
    ]
    function done () { for (const off of offs) off(); resolve(events) }
  })
}

async function openClient (t: Test, server: ClientServer, getToken?: (reason: string) => string) {
  const client = createClient<Route>(server.url(), { getToken: getToken ?? (() => server.sign('alice')), backoff: FAST })
  t.teardown(() => client.close())
  await client.connect()
  return client
}

test('after a server restart the client reconnects by itself and sends what was queued meanwhile', async (t) => {
  let server = await startServer()
  t.teardown(() => server.close())
  const client = await openClient(t, server)
  const outcome = nextOutcome(client)
  const port = server.port
  const down = new Promise((resolve) => client.on('reconnecting', resolve))
  await server.close()
  await down
  client.send('whoami', null)
  server = await startServer(port)
  t.same(await outcome, ['reconnecting 1006', 'open reconnected=true'])
  const me = await new Promise((resolve) => client.on('message:me', resolve))
  t.same(me, { action: 'me', payload: { sub: 'alice' } }, 'the frame queued while disconnected was delivered')
})

const reconnectCodes = [1001, 1008, 1009, 1011, 1013, 4429, 4500, 4503, 4502]
for (const code of reconnectCodes) {
  test(`a close with ${code} reconnects with backoff`, async (t) => {
    const server = await startServer()
    t.teardown(() => server.close())
    const client = await openClient(t, server)
    const outcome = nextOutcome(client)
    client.send('closeMe', { code, reason: 'Bye' })
    t.same(await outcome, [`reconnecting ${code}`, 'open reconnected=true'])
  })
}

test('a dropped connection (1006) reconnects with backoff', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const client = await openClient(t, server)
  const outcome = nextOutcome(client)
  client.send('drop', null)
  t.same(await outcome, ['reconnecting 1006', 'open reconnected=true'])
})

const stopCodes: Array<[number, string]> = [[1000, ''], [4403, 'Forbidden'], [4404, 'Not Found'], [4408, 'Idle timeout'], [4418, "I'm a teapot"], [4401, 'Logged out']]
for (const [code, reason] of stopCodes) {
  test(`a close with ${code} ${reason} stops the client`, async (t) => {
    const server = await startServer()
    t.teardown(() => server.close())
    const client = await openClient(t, server)
    const outcome = nextOutcome(client)
    client.send('closeMe', { code, reason })
    t.same(await outcome, [`closed ${code} ${reason}`])
    t.equal(client.state, 'closed')
  })
}

test('a 4401 after the socket was open asks getToken once, then reconnects', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const reasons: string[] = []
  const client = await openClient(t, server, (reason) => { reasons.push(reason); return server.sign('alice') })
  const outcome = nextOutcome(client)
  client.send('closeMe', { code: 4401, reason: 'Unauthorized' })
  t.same(await outcome, ['reconnecting 4401', 'open reconnected=true'])
  t.same(reasons, ['connect', 'expired'])
})

test('a 4401 whose fresh token is refused again stops the client with the refusal', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  let calls = 0
  const client = await openClient(t, server, () => ++calls === 1 ? server.sign('alice') : 'not-a-jwt')
  const outcome = nextOutcome(client)
  client.send('closeMe', { code: 4401, reason: 'Unauthorized' })
  t.same(await outcome, ['reconnecting 4401', 'refused 401', 'closed 4401 Unauthorized'])
})

test('the policy can be overridden: stop on 1011', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const seen: unknown[] = []
  const client = createClient<Route>(server.url(), {
    getToken: () => server.sign('alice'),
    policy: (close) => { seen.push({ code: close.code, wasOpen: close.wasOpen, attempt: close.attempt }); return { action: 'stop' } }
  })
  t.teardown(() => client.close())
  await client.connect()
  const outcome = nextOutcome(client)
  client.send('closeMe', { code: 1011, reason: 'Internal error' })
  t.same(await outcome, ['closed 1011 Internal error'])
  t.same(seen, [{ code: 1011, wasOpen: true, attempt: 0 }])
})

test('while disconnected, send queues up to maxQueued and then throws', async (t) => {
  const client = createClient<Route>('ws://127.0.0.1:1/ws/rooms/lobby', { maxQueued: 2 })
  client.send('whoami', null)
  client.send('whoami', null)
  t.throws(() => client.send('whoami', null), new ChanxClientError('FST_CHANX_CLIENT_QUEUE_FULL', 'Disconnected, and 2 frames already wait: not sent'))
  await t.rejects(client.request('whoami', null), { code: 'FST_CHANX_CLIENT_QUEUE_FULL' }, 'a request rejects instead')
  const closed = new Promise((resolve) => client.on('closed', resolve))
  client.close()
  t.same(await closed, { code: 1000, reason: '', queued: 0 })
})
