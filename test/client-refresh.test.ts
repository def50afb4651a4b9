import { test } from 'tap'
import { createClient } from '../plugin/client'
import { clientRoute, startServer } from './helpers/client-server'

type Route = typeof clientRoute

test('a token about to expire is refreshed in-band and the socket stays open past the old expiry', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const reasons: string[] = []
  let tokens = 0
  const client = createClient<Route>(server.url(), {
    // The first token expires in 2 s; each fresh one in an hour.
    getToken: (reason) => { reasons.push(reason); return server.sign('alice', ++tokens === 1 ? 2 : 3600) },
    refreshBeforeExpiry: 1500
  })
  t.teardown(() => client.close())
  const events: string[] = []
  client.on('refreshed', () => events.push('refreshed'))
  client.on('reconnecting', (info) => events.push(`reconnecting ${info.code}`))
  client.on('closed', (info) => events.push(`closed ${info.code}`))
  await client.connect()
  await new Promise((resolve) => setTimeout(resolve, 3500))
  t.same(reasons, ['connect', 'refresh'])
  t.same(events, ['refreshed'], 'refreshed once, never closed')
  t.same(await client.request('whoami', null), { action: 'me', payload: { sub: 'alice' }, id: 1 }, 'the same socket still answers')
})

test('without a refresh the server closes the expired socket with 4401 and the client reconnects with a fresh token', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const reasons: string[] = []
  const client = createClient<Route>(server.url(), {
    getToken: (reason) => { reasons.push(reason); return server.sign('alice', reasons.length === 1 ? 1 : 3600) },
    refreshBeforeExpiry: 0
  })
  t.teardown(() => client.close())
  await client.connect()
  const info = await new Promise((resolve) => client.on('reconnecting', resolve))
  t.match(info, { code: 4401, reason: 'Unauthorized', delay: 0 })
  await new Promise((resolve) => client.on('open', resolve))
  t.same(reasons, ['connect', 'expired'])
})
