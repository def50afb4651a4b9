import { test } from 'tap'
import { WebSocket } from 'ws'
import { ChanxRefusal, createClient } from '../plugin/client'
import { authenticated, OK, resumeOf, sleep, startScripted } from './helpers/scripted-server'

test('close() then connect() while getToken is pending opens one socket, not two', async (t) => {
  const server = await startScripted((socket) => socket.send(OK))
  t.teardown(() => server.close())
  let calls = 0
  const client = createClient(server.url, {
    WebSocket,
    // Log out while the first token is still on its way, log in again: the first answers while the second is still pending.
    getToken: async () => { const call = ++calls; await sleep(call === 1 ? 100 : 200); return 'token-' + call }
  })
  t.teardown(() => client.close())
  const first = client.connect()
  const firstOutcome = first.then(() => 'resolved', (err: Error & { code?: string }) => err.code)
  client.close()
  await client.connect()
  t.equal(await firstOutcome, 'FST_CHANX_CLIENT_CLOSED', 'the abandoned connect() rejects')
  await sleep(400)
  t.same(server.handshakes, ['/ws?token=token-2'], 'only the current attempt dialled')
  t.equal(server.sockets.size, 1, 'one socket is open on the server')
})

test('after close(), connect() starts a new session: no old resume, not a reconnection, and its first refusal is reported', async (t) => {
  const server = await startScripted((socket, _url, index) => {
    if (index === 0) socket.send(authenticated({ chanx_recovery: { token: 'lineage-1', positions: { room: [3, 'e'] } } }))
    else if (index === 1) socket.send(OK)
    else {
      socket.send(JSON.stringify({ action: 'authentication', payload: { status_code: 500, status_text: 'Internal Server Error', data: { detail: 'Internal server error' } } }))
      socket.close(4500, 'Internal Server Error')
    }
  })
  t.teardown(() => server.close())
  const client = createClient(server.url, { WebSocket, backoff: { initialDelay: 10, maxDelay: 10 } })
  t.teardown(() => client.close())
  const opens: boolean[] = []
  client.on('open', (info) => opens.push(info.reconnected))
  await client.connect()
  client.close()
  await client.connect()
  t.equal(resumeOf(server.handshakes[1]!), null, 'the new session does not resume the old lineage')
  t.same(opens, [false, false], 'the new session\'s open is not a reconnection')
  t.equal(client.recovery, null, 'the old recovery outcome is forgotten')
  client.close()
  const refused = await client.connect().then(() => null, (err: unknown) => err)
  t.ok(refused instanceof ChanxRefusal, 'connect() rejects with the refusal')
  t.match(refused, { status: 500, closeCode: 4500 })
  await sleep(100)
  t.equal(server.handshakes.length, 3, 'the first refusal of the new session is not retried')
})
