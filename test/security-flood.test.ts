import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { defineSocketRoute, type FastifyChanxOptions } from '../plugin'
import { closeApp, connect } from '../plugin/testing'

async function buildApp (options: FastifyChanxOptions, route: { rateLimit?: false | { messagesPerSecond: number, burst: number } } = {}) {
  let handled = 0
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, options)
  app.route(defineSocketRoute({
    url: '/ws',
    ...route,
    messages: { say: Type.String() },
    handlers: { say: () => { handled++ } }
  }))
  await app.ready()
  return { app, handled: () => handled }
}

const RATE_LIMITED = { action: 'error', payload: { detail: 'Rate limit exceeded' } }

test('a flood is answered "Rate limit exceeded", then closed with 1008 when it goes on', async (t) => {
  const { app, handled } = await buildApp({ rateLimit: { messagesPerSecond: 1, burst: 3 } })
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  await client.authentication()
  for (let i = 0; i < 3; i++) client.sendAction('say', 'hi')
  client.sendAction('say', 'one too many')
  t.same(await client.receive(), RATE_LIMITED)
  t.equal(handled(), 3, 'the burst was handled, the excess was not')
  for (let i = 0; i < 3; i++) client.sendAction('say', 'still flooding')
  t.same(await client.receive(), RATE_LIMITED)
  t.same(await client.receive(), RATE_LIMITED)
  t.equal(await client.closed(), 1008)
  t.equal(client.reason, 'Rate limit exceeded')
  t.equal(handled(), 3)
})

test('a client that slows down after a refusal is served again', async (t) => {
  const { app, handled } = await buildApp({ rateLimit: { messagesPerSecond: 20, burst: 2 } })
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  await client.authentication()
  for (let i = 0; i < 3; i++) client.sendAction('say', 'x')
  t.same(await client.receive(), RATE_LIMITED)
  await new Promise((resolve) => setTimeout(resolve, 120))
  client.sendAction('ping')
  t.same(await client.receive(), { action: 'pong', payload: null })
  t.equal(handled(), 2)
})

test('a route can lift or tighten the plugin-wide limit', async (t) => {
  const lifted = await buildApp({ rateLimit: { messagesPerSecond: 1, burst: 1 } }, { rateLimit: false })
  t.teardown(() => closeApp(lifted.app))
  const client = await connect(lifted.app, '/ws')
  await client.authentication()
  for (let i = 0; i < 50; i++) client.sendAction('say', 'x')
  client.sendAction('ping')
  t.same(await client.receive(), { action: 'pong', payload: null })
  t.equal(lifted.handled(), 50)
})

test('rateLimit is checked at registration', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(chanx, { rateLimit: { messagesPerSecond: 0, burst: 1 } }) }, { code: 'FST_CHANX_INVALID_OPTION', message: /rateLimit/ })
})
