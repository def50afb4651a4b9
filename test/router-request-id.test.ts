import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { defineSocketRoute } from '../plugin'
import { closeApp, connect } from '../plugin/testing'

async function buildApp (concurrency = 1) {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx)
  app.route(defineSocketRoute({
    url: '/ws',
    sendCompletion: true,
    concurrency,
    messages: { echo: Type.Object({ text: Type.String(), delay: Type.Optional(Type.Integer()) }), boom: Type.Null(), empty: Type.Null() },
    handlers: {
      echo: async (message) => {
        if (message.payload.delay !== undefined) await new Promise((resolve) => setTimeout(resolve, message.payload.delay))
        return { action: 'echo', payload: { text: message.payload.text } }
      },
      boom: () => { throw new Error('boom') },
      empty: () => ({}) as never
    }
  }))
  await app.ready()
  return app
}

test('a frame without an id gets replies without an id', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  await client.authentication()
  client.send({ action: 'echo', payload: { text: 'hi' } })
  t.same(await client.receive(), { action: 'echo', payload: { text: 'hi' } })
  t.same(await client.receive(), { action: 'complete', payload: null })
})

test('the id of a frame is echoed on its reply, its errors, its pong and its complete', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  await client.authentication()
  client.send({ action: 'echo', payload: { text: 'hi' }, id: 'r1' })
  t.same(await client.receive(), { action: 'echo', payload: { text: 'hi' }, id: 'r1' })
  t.same(await client.receive(), { action: 'complete', payload: null, id: 'r1' })
  client.send({ action: 'ping', payload: null, id: 7 })
  t.same(await client.receive(), { action: 'pong', payload: null, id: 7 })
  t.same(await client.receive(), { action: 'complete', payload: null, id: 7 })
  client.send({ action: 'echo', payload: {}, id: 'r2' })
  t.same(await client.receive(), { action: 'error', payload: [{ type: 'missing', loc: ['echo', 'payload', 'text'], msg: 'Field required' }], id: 'r2' })
  t.same(await client.receive(), { action: 'complete', payload: null, id: 'r2' })
  client.send({ action: 'nope', payload: null, id: 'r3' })
  t.same(await client.receive(), { action: 'error', payload: [{ type: 'union_tag_invalid', loc: [], msg: "Input tag 'nope' found using 'action' does not match any of the expected tags: 'ping', 'echo', 'boom', 'empty'" }], id: 'r3' })
  t.same(await client.receive(), { action: 'complete', payload: null, id: 'r3' })
  client.send({ payload: null, id: 'r4' })
  t.same(await client.receive(), { action: 'error', payload: [{ type: 'union_tag_not_found', loc: [], msg: "Unable to extract tag using discriminator 'action'" }], id: 'r4' })
  t.same(await client.receive(), { action: 'complete', payload: null, id: 'r4' })
  client.send({ action: 'boom', payload: null, id: 'r5' })
  t.same(await client.receive(), { action: 'error', payload: { detail: 'Failed to process message' }, id: 'r5' })
  t.same(await client.receive(), { action: 'complete', payload: null, id: 'r5' })
  client.send({ action: 'empty', payload: null, id: 'r6' })
  t.same(await client.receive(), { id: 'r6' }, 'an empty object reply still carries the id')
  t.same(await client.receive(), { action: 'complete', payload: null, id: 'r6' })
})

test('an id that is neither a short string nor a number is answered with an error and the socket stays open', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  await client.authentication()
  for (const id of [{}, 'x'.repeat(65), null, true]) {
    client.send({ action: 'echo', payload: { text: 'hi' }, id })
    t.same(await client.receive(), { action: 'error', payload: { detail: 'Invalid id: a string of at most 64 characters or a finite number' } })
    t.same(await client.receive(), { action: 'complete', payload: null })
  }
  client.send({ action: 'echo', payload: { text: 'ok' }, id: 'x'.repeat(64) })
  t.same(await client.receive(), { action: 'echo', payload: { text: 'ok' }, id: 'x'.repeat(64) })
})

test('under concurrency 3, replies that finish out of order carry the id of their own frame', async (t) => {
  const app = await buildApp(3)
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  await client.authentication()
  client.send({ action: 'echo', payload: { text: 'slow', delay: 60 }, id: 'a' })
  client.send({ action: 'echo', payload: { text: 'mid', delay: 30 }, id: 'b' })
  client.send({ action: 'echo', payload: { text: 'fast', delay: 0 }, id: 'c' })
  const received = [] as unknown[]
  for (let i = 0; i < 6; i++) received.push(await client.receive())
  t.same(received, [
    { action: 'echo', payload: { text: 'fast' }, id: 'c' }, { action: 'complete', payload: null, id: 'c' },
    { action: 'echo', payload: { text: 'mid' }, id: 'b' }, { action: 'complete', payload: null, id: 'b' },
    { action: 'echo', payload: { text: 'slow' }, id: 'a' }, { action: 'complete', payload: null, id: 'a' }
  ])
})
