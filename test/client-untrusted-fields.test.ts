import { test } from 'tap'
import { WebSocket } from 'ws'
import { ChanxRefusal, createClient } from '../plugin/client'
import { authenticated, resumeOf, sleep, startScripted } from './helpers/scripted-server'
import { clientRoute, startServer } from './helpers/client-server'

test('positions keyed by inherited names or of the wrong shape never enter the resume', async (t) => {
  const server = await startScripted((socket, _url, index) => {
    socket.send(authenticated({ chanx_recovery: { token: 'lineage', positions: { room: [1, 'e'] }, user_position: [0, 'u'] } }))
    if (index > 0) return
    for (const frame of [
      '{"action":"chat","chanx_pos":{"toString":[5,"x"],"room":[2,"e"]}}',
      '{"action":"chat","chanx_pos":{"__proto__":[6,"x"],"constructor":[6,"x"]}}',
      '{"action":"chat","chanx_pos":{"room":"junk"}}',
      '{"action":"chat","chanx_pos":"room"}',
      '{"action":"chat","chanx_upos":[3,"u"]}',
      '{"action":"chat","chanx_upos":"junk"}',
      '{"action":"chat","chanx_upos":[1.5,"u"]}'
    ]) socket.send(frame)
    socket.close(1012, 'Service Restart')
  })
  t.teardown(() => server.close())
  const client = createClient(server.url, { WebSocket, backoff: { initialDelay: 10, maxDelay: 10 } })
  t.teardown(() => client.close())
  const reopened = new Promise((resolve) => client.on('open', (info) => { if (info.reconnected) resolve(info) }))
  await client.connect()
  await reopened
  t.same(resumeOf(server.handshakes[1]!), { t: 'lineage', g: { room: [2, 'e'] }, u: [3, 'u'] })
})

test('a reply that comes after its request timed out is dropped, not emitted as a message', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const client = createClient<typeof clientRoute>(server.url(), { getToken: () => server.sign('alice') })
  t.teardown(() => client.close())
  await client.connect()
  const seen: unknown[] = []
  client.on('message', (message) => seen.push(message))
  await t.rejects(client.request('echo', { text: 'late', delay: 150 }, { timeout: 30 }), { code: 'FST_CHANX_CLIENT_TIMEOUT' })
  await sleep(300)
  t.same(seen, [], 'the late reply was dropped')
  t.same(await client.request('echo', { text: 'on time' }), { action: 'echo', payload: { text: 'on time' }, id: 2 }, 'the next request works')
})

test('a 431 to the upgrade of a reconnection is a refusal that names the resume, not a reconnect', async (t) => {
  // Node answers 431 when the URL and headers pass 4 KB: the resume below makes the reconnection's URL too large.
  const server = await startScripted((socket, _url, index) => {
    if (index > 0) return
    socket.send(authenticated({ chanx_recovery: { token: 'x'.repeat(5000), positions: {} } }))
    socket.close(1012, 'Service Restart')
  }, { maxHeaderSize: 4096 })
  t.teardown(() => server.close())
  const client = createClient(server.url, { WebSocket, backoff: { initialDelay: 10, maxDelay: 10 } })
  t.teardown(() => client.close())
  const events: string[] = []
  client.on('reconnecting', (info) => events.push(`reconnecting ${info.code}`))
  const refused = new Promise<ChanxRefusal>((resolve) => client.on('refused', resolve))
  const closed = new Promise((resolve) => client.on('closed', resolve))
  await client.connect()
  t.match(await refused, { status: 431, closeCode: 4431, detail: 'The resume or the URL was too large' })
  t.match(await closed, { code: 4431 })
  await sleep(100)
  t.same(events, ['reconnecting 1012'], 'no reconnection after the 431')
  t.equal(client.state, 'closed')
})

test('a 4xx answer to the first upgrade (rejectUpgrade) rejects connect() with its status', async (t) => {
  const server = await startServer(0, { rejectUpgrade: true })
  t.teardown(() => server.close())
  const client = createClient<typeof clientRoute>(server.url('secret'), { getToken: () => server.sign('alice'), backoff: { initialDelay: 10, maxDelay: 10 } })
  t.teardown(() => client.close())
  const reconnecting: unknown[] = []
  client.on('reconnecting', (info) => reconnecting.push(info))
  const outcome = await Promise.race([client.connect().then(() => 'open', (err: unknown) => err), sleep(2000).then(() => 'still retrying')])
  t.ok(outcome instanceof ChanxRefusal, 'connect() rejects with a ChanxRefusal')
  t.match(outcome, { status: 403, closeCode: 4403 })
  t.same(reconnecting, [], 'it did not retry')
})
