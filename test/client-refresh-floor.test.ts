import { test } from 'tap'
import { WebSocket } from 'ws'
import { createClient } from '../plugin/client'
import { fakeToken, OK, sleep, startScripted } from './helpers/scripted-server'

/** A server that accepts every socket and every in-band refresh, and records when each refresh came. */
async function refreshingServer () {
  const refreshes: number[] = []
  const server = await startScripted((socket) => {
    socket.send(OK)
    socket.on('message', (data) => {
      if ((JSON.parse(String(data)) as { action: string }).action !== 'authenticate') return
      refreshes.push(Date.now())
      socket.send(OK)
    })
  })
  return { server, refreshes }
}

const now = () => Math.floor(Date.now() / 1000)

test('a token that lives less than refreshBeforeExpiry is refreshed at half its life, not in a loop', async (t) => {
  const { server, refreshes } = await refreshingServer()
  t.teardown(() => server.close())
  // Lives 2 s; refreshBeforeExpiry is the default 30 s.
  const client = createClient(server.url, { WebSocket, getToken: () => { const iat = now(); return fakeToken({ sub: 'alice', iat, exp: iat + 2 }) } })
  t.teardown(() => client.close())
  await client.connect()
  const start = Date.now()
  await sleep(1600)
  t.equal(refreshes.length, 1, 'one refresh in 1.6 s')
  t.ok(refreshes[0]! - start >= 900, `at half the token's life (${refreshes[0]! - start} ms)`)
})

test('a short token is refreshed at most once a second', async (t) => {
  const { server, refreshes } = await refreshingServer()
  t.teardown(() => server.close())
  // Lives 1 s (half-life 500 ms): the floor of 1 s applies.
  const client = createClient(server.url, { WebSocket, getToken: () => { const iat = now(); return fakeToken({ sub: 'alice', iat, exp: iat + 1 }) } })
  t.teardown(() => client.close())
  await client.connect()
  await sleep(2500)
  t.ok(refreshes.length >= 1 && refreshes.length <= 2, `${refreshes.length} refreshes in 2.5 s`)
  const gaps = refreshes.slice(1).map((at, i) => at - refreshes[i]!)
  t.ok(gaps.every((gap) => gap >= 950), `a second apart at least (${gaps.join(', ')} ms)`)
})

test('a client clock an hour ahead of the issuer\'s neither loops nor waits past the token\'s life', async (t) => {
  const { server, refreshes } = await refreshingServer()
  t.teardown(() => server.close())
  // Issued by a clock an hour behind this one, for 4 s: by the local clock it expired long ago.
  const client = createClient(server.url, { WebSocket, getToken: () => { const iat = now() - 3600; return fakeToken({ sub: 'alice', iat, exp: iat + 4 }) } })
  t.teardown(() => client.close())
  await client.connect()
  const start = Date.now()
  await sleep(2600)
  t.equal(refreshes.length, 1, 'one refresh in 2.6 s')
  t.ok(refreshes[0]! - start >= 1900, `at half the token's 4 s (${refreshes[0]! - start} ms)`)
})
