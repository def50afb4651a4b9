import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { defineSocketRoute } from '../plugin'
import { closeApp } from '../plugin/testing'
import { ChanxClientError, createClient } from '../plugin/client'
import { clientRoute, startServer } from './helpers/client-server'

type Route = typeof clientRoute

test('request correlates replies under concurrency 3, whatever order they finish in', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const client = createClient<Route>(server.url(), { getToken: () => server.sign('alice') })
  t.teardown(() => client.close())
  await client.connect()
  const finished: string[] = []
  const messages: unknown[] = []
  client.on('message', (message) => messages.push(message))
  const replies = await Promise.all([
    client.request('echo', { text: 'slow', delay: 80 }).then((reply) => { finished.push('slow'); return reply }),
    client.request('echo', { text: 'mid', delay: 40 }).then((reply) => { finished.push('mid'); return reply }),
    client.request('echo', { text: 'fast', delay: 0 }).then((reply) => { finished.push('fast'); return reply })
  ])
  t.same(replies, [
    { action: 'echo', payload: { text: 'slow' }, id: 1 },
    { action: 'echo', payload: { text: 'mid' }, id: 2 },
    { action: 'echo', payload: { text: 'fast' }, id: 3 }
  ])
  t.same(finished, ['fast', 'mid', 'slow'], 'the server answered out of order')
  t.same(messages, [], 'replies to requests are not also emitted as messages')
})

test('a request answered with an error rejects with the error payload', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const client = createClient<Route>(server.url(), { getToken: () => server.sign('alice') })
  t.teardown(() => client.close())
  await client.connect()
  await t.rejects(client.request('fail', null), new ChanxClientError('FST_CHANX_CLIENT_ERROR_REPLY', 'The server answered with an error: {"detail":"Failed to process message"}', { detail: 'Failed to process message' }))
  await t.rejects(client.request('echo', {} as never), { code: 'FST_CHANX_CLIENT_ERROR_REPLY', payload: [{ type: 'missing', loc: ['echo', 'payload', 'text'], msg: 'Field required' }] })
})

test('a request without a reply rejects after its timeout with a clear error', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const client = createClient<Route>(server.url(), { getToken: () => server.sign('alice'), requestTimeout: 50 })
  t.teardown(() => client.close())
  await client.connect()
  await t.rejects(client.request('echo', { text: 'late', delay: 500 }), new ChanxClientError('FST_CHANX_CLIENT_TIMEOUT', 'Request "echo" (id 1) got no reply within 50 ms'))
})

test('a request pending when the connection drops rejects at once', async (t) => {
  const server = await startServer()
  t.teardown(() => server.close())
  const client = createClient<Route>(server.url(), { getToken: () => server.sign('alice'), backoff: { initialDelay: 20, maxDelay: 40 } })
  t.teardown(() => client.close())
  await client.connect()
  const pending = client.request('echo', { text: 'never', delay: 500 })
  client.send('drop', null)
  await t.rejects(pending, new ChanxClientError('FST_CHANX_CLIENT_DISCONNECTED', 'The connection closed (1006) before the reply came'))
})

test('a ping unanswered within its timeout counts as a dead path: the client reconnects', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  await app.register(chanx)
  let answer = false
  app.route(defineSocketRoute({
    url: '/ws',
    // This route's own `ping` answers only when told to: a path that swallows frames, as a dead one does.
    messages: { ping: Type.Null() },
    handlers: { ping: () => answer ? { action: 'pong', payload: null } : undefined }
  }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const client = createClient(`ws://127.0.0.1:${port}/ws`, { ping: { interval: 40, timeout: 60 }, backoff: { initialDelay: 10, maxDelay: 20 } })
  t.teardown(() => client.close())
  await client.connect()
  const reconnecting = await new Promise((resolve) => client.on('reconnecting', resolve))
  t.match(reconnecting, { code: 1006, reason: 'Ping timeout', attempt: 1 })
  await new Promise((resolve) => client.on('open', resolve))
  answer = true
  const pongs: unknown[] = []
  client.on('message:pong', (message) => pongs.push(message))
  const drops: unknown[] = []
  client.on('reconnecting', (info) => drops.push(info))
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.ok(pongs.length >= 2, 'an answered ping keeps the socket')
  t.same(drops, [], 'and no reconnection follows')
})
