import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import { WebSocket } from 'ws'
import chanx, { defineSocketRoute } from '../plugin'
import { closeApp } from '../plugin/testing'
import { ChanxClientError, backoffDelay, createClient, defaultPolicy } from '../plugin/client'
import { clientRoute, startServer } from './helpers/client-server'

type Route = typeof clientRoute

test('a route without the authentication message is ready when the socket opens; frames that are not JSON objects are ignored', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  await app.register(chanx, { sendAuthenticationMessage: false })
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { noise: Type.Null() },
    handlers: { noise: (_message, ctx) => { ctx.socket.send('not json'); ctx.socket.send('null'); return { action: 'after', payload: 1 } } }
  }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const client = createClient(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`, { noAuthenticationMessage: true, WebSocket })
  t.teardown(() => client.close())
  await client.connect()
  t.equal(client.state, 'open')
  const seen: unknown[] = []
  const after = new Promise((resolve) => client.on('message:after', resolve))
  client.on('message', (message) => seen.push(message))
  client.send('noise', null)
  await after
  t.same(seen, [{ action: 'after', payload: 1 }], 'only the JSON object came through')
})

test('a token as a subprotocol goes beside the protocols the app offers', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const client = createClient<Route>(server.url(), { getToken: () => server.sign('carol'), tokenIn: 'protocol', protocols: 'chat.v1' })
  t.teardown(() => client.close())
  await client.connect()
  t.same(await client.request('whoami', null), { action: 'me', payload: { sub: 'carol' }, id: 1 })
})

test('a getToken that throws connects without a token, and the refusal says so', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const client = createClient<Route>(server.url(), { getToken: () => { throw new Error('the token service is down') } })
  t.teardown(() => client.close())
  await t.rejects(client.connect(), { name: 'ChanxRefusal', status: 401, detail: 'Authentication credentials were not provided.', closeCode: 4401 })
})

test('a WebSocket constructor that throws rejects connect with its error', async (t) => {
  const failure = new SyntaxError('bad url')
  const client = createClient('not a url', { WebSocket: class { constructor () { throw failure } } as never })
  await t.rejects(client.connect(), failure)
  t.equal(client.state, 'closed')
})

test('close() while connect() waits rejects it with FST_CHANX_CLIENT_CLOSED', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const client = createClient<Route>(server.url('slow'), { getToken: () => server.sign('alice') })
  const connecting = client.connect()
  const again = client.connect()
  client.close()
  await t.rejects(connecting, new ChanxClientError('FST_CHANX_CLIENT_CLOSED', 'The client was closed'))
  await t.rejects(again, new ChanxClientError('FST_CHANX_CLIENT_CLOSED', 'The client was closed'), 'a second connect() waited for the same handshake')
})

test('the default policy: full jitter below the capped exponential, and maxAttempts', async (t) => {
  for (let attempt = 0; attempt < 8; attempt++) {
    const delay = backoffDelay(attempt, { initialDelay: 100, maxDelay: 1000 })
    t.ok(delay >= 0 && delay < Math.min(1000, 100 * 2 ** attempt), `attempt ${attempt}: ${delay} ms`)
  }
  const close = { code: 1006, reason: '', refusal: null, attempt: 3, wasOpen: true, afterRefresh: false, canRefresh: false }
  t.same(defaultPolicy(close, { maxAttempts: 3 }), { action: 'stop' })
  t.equal(defaultPolicy(close, { maxAttempts: 4 }).action, 'reconnect')
  t.same(defaultPolicy({ ...close, code: 4401 }), { action: 'stop' }, 'a 4401 without getToken stops')
})
