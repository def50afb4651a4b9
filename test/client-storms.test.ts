import { test } from 'tap'
import { WebSocket } from 'ws'
import { createClient } from '../plugin/client'
import { OK, sleep, startScripted } from './helpers/scripted-server'

/** A server that authenticates every socket, then closes it at once (or after `openFor(index)` ms) with `code`. */
function flapping (code: number, reason = '', openFor: (index: number) => number = () => 0) {
  return startScripted((socket, _url, index) => {
    socket.send(OK)
    setTimeout(() => socket.close(code, reason), openFor(index))
  })
}

test('a server that opens and closes at once with 1011 gets a growing backoff, not one reset on every open', async (t) => {
  const server = await flapping(1011)
  t.teardown(() => server.close())
  const client = createClient(server.url, { WebSocket, backoff: { initialDelay: 20, maxDelay: 60_000, maxPerMinute: 1000 } })
  t.teardown(() => client.close())
  const attempts: number[] = []
  client.on('reconnecting', (info) => attempts.push(info.attempt))
  await client.connect()
  await sleep(1500)
  t.ok(attempts.length >= 3, `it reconnected (${attempts.length} times)`)
  t.same(attempts, attempts.map((_attempt, i) => i + 1), 'each reconnection counts as one more attempt: the backoff grows')
})

test('a connection that stayed open resetAfter ms proved healthy: the backoff starts over', async (t) => {
  // Sockets 0, 1 and 2 close at once; socket 3 stays open 300 ms.
  const server = await flapping(1011, '', (index) => index === 3 ? 300 : 0)
  t.teardown(() => server.close())
  const client = createClient(server.url, { WebSocket, backoff: { initialDelay: 5, maxDelay: 5, resetAfter: 200, maxPerMinute: 1000 } })
  t.teardown(() => client.close())
  const attempts: number[] = []
  client.on('reconnecting', (info) => attempts.push(info.attempt))
  await client.connect()
  while (attempts.length < 5) await sleep(20)
  t.same(attempts.slice(0, 5), [1, 2, 3, 1, 2])
})

test('at most maxPerMinute handshakes start in a minute, whatever the policy says', async (t) => {
  const server = await flapping(1011)
  t.teardown(() => server.close())
  const client = createClient(server.url, { WebSocket, backoff: { initialDelay: 1, maxDelay: 1, maxPerMinute: 5 } })
  t.teardown(() => client.close())
  const delays: number[] = []
  client.on('reconnecting', (info) => delays.push(info.delay))
  await client.connect()
  await sleep(1000)
  t.equal(server.handshakes.length, 5, 'five handshakes, then the client waits')
  t.ok(delays.at(-1)! > 55_000, `the next waits for the oldest to leave the minute (${delays.at(-1)} ms)`)
})

test('a second 4401 in a row stops the client even when a 200 came between the two', async (t) => {
  const server = await flapping(4401, 'Unauthorized')
  t.teardown(() => server.close())
  const reasons: string[] = []
  const client = createClient(server.url, { WebSocket, getToken: (reason) => { reasons.push(reason); return 'token' } })
  t.teardown(() => client.close())
  const closed = new Promise<{ code: number }>((resolve) => client.on('closed', resolve))
  await client.connect()
  t.match(await closed, { code: 4401 })
  await sleep(200)
  t.equal(client.state, 'closed')
  t.same(reasons, ['connect', 'expired'], 'one fresh token, then it stopped')
  t.equal(server.handshakes.length, 2)
})
