import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { Type as T034 } from '@sinclair/typebox'
import { Type } from 'typebox'
import chanx, { defineSocketRoute } from '../plugin'
import { closeApp } from '../plugin/testing'
import { AUTH_OK, open } from './helpers/router-client'

// Schemas of the typebox 1.x line (@fastify/type-provider-typebox 6), compiled by typebox's own compiler.
const Chat = Type.Object({
  text: Type.String({ minLength: 1, maxLength: 20 }),
  count: Type.Optional(Type.Integer({ minimum: 0 })),
  tags: Type.Optional(Type.Array(Type.String(), { maxItems: 2 }))
}, { additionalProperties: false })

async function buildApp (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx)
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { chat: Chat, legacy: T034.Object({ text: T034.String() }), invalid: Type.Null() },
    outgoing: { echo: Type.Object({ text: Type.String(), count: Type.Integer() }) },
    validateOutgoing: true,
    handlers: {
      chat: (message) => ({ action: 'echo', payload: { text: message.payload.text, count: message.payload.count ?? 0 } }),
      legacy: (message) => ({ action: 'echo', payload: { text: message.payload.text, count: -1 } }),
      // A number, but not an integer: the outgoing check must drop it.
      invalid: () => ({ action: 'echo', payload: { text: 'x', count: 1.5 } })
    }
  }))
  await app.ready()
  return app
}

function errorsOf (frame: string): Array<{ type: string, loc: unknown[], msg: string }> {
  const parsed = JSON.parse(frame) as { action: string, payload: Array<{ type: string, loc: unknown[], msg: string }> }
  if (parsed.action !== 'error') throw new Error(`expected an error, got ${frame}`)
  return parsed.payload
}

test('a typebox 1.x schema validates a frame and routes it to its handler', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await open(app, '/ws')
  t.equal(await client.next(), AUTH_OK)
  client.send({ action: 'chat', payload: { text: 'hi', count: 2 } })
  t.equal(await client.next(), '{"action":"echo","payload":{"text":"hi","count":2}}')
  // A route may mix both TypeBox lines.
  client.send({ action: 'legacy', payload: { text: 'old' } })
  t.equal(await client.next(), '{"action":"echo","payload":{"text":"old","count":-1}}')
})

test('a frame that fails a typebox 1.x schema gets the Chanx error list and the socket stays open', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await open(app, '/ws')
  await client.next()

  client.send({ action: 'chat', payload: {} })
  t.same(errorsOf(await client.next()).map(({ type, loc }) => ({ type, loc })), [{ type: 'missing', loc: ['chat', 'payload', 'text'] }])

  client.send({ action: 'chat', payload: { text: 5 } })
  t.same(errorsOf(await client.next()).map(({ type, loc }) => ({ type, loc })), [{ type: 'string_type', loc: ['chat', 'payload', 'text'] }])

  client.send({ action: 'chat', payload: { text: '', count: -1, tags: ['a', 'b', 'c'], extra: true } })
  t.same(errorsOf(await client.next()).map(({ type, loc }) => ({ type, loc })), [
    { type: 'extra_forbidden', loc: ['chat', 'payload', 'extra'] },
    { type: 'string_too_short', loc: ['chat', 'payload', 'text'] },
    { type: 'greater_than_equal', loc: ['chat', 'payload', 'count'] },
    { type: 'too_long', loc: ['chat', 'payload', 'tags'] }
  ])

  client.send({ action: 'chat', payload: 'text' })
  const [notObject] = errorsOf(await client.next())
  // An untitled object schema stands for a TypedDict, as for @sinclair/typebox (dict_type); msg is typebox 1.x's.
  t.same(notObject, { type: 'dict_type', loc: ['chat', 'payload'], msg: 'must be object' })

  client.send({ action: 'chat', payload: { text: 'still open' } })
  t.equal(await client.next(), '{"action":"echo","payload":{"text":"still open","count":0}}')
})

test('a typebox 1.x error list has the same types and locations as @sinclair/typebox 0.34 gives on a strict route', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  await app.register(chanx)
  app.route(defineSocketRoute({
    url: '/ws',
    messages: {
      v1: Type.Object({ text: Type.String({ maxLength: 3 }), n: Type.Integer() }),
      v034: T034.Object({ text: T034.String({ maxLength: 3 }), n: T034.Integer() })
    },
    handlers: { v1: () => undefined, v034: () => undefined },
    // typebox 1.x schemas validate strictly (no lax conversions): compare with a strict 0.34 route.
    strict: true
  }))
  await app.ready()
  const client = await open(app, '/ws')
  await client.next()
  const payload = { text: 'toolong', n: 1.5 }
  client.send({ action: 'v1', payload })
  const v1 = errorsOf(await client.next()).map(({ type, loc }) => ({ type, loc: loc.slice(1) }))
  client.send({ action: 'v034', payload })
  const v034 = errorsOf(await client.next()).map(({ type, loc }) => ({ type, loc: loc.slice(1) }))
  t.same(v1, v034)
  t.same(v1, [{ type: 'string_too_long', loc: ['payload', 'text'] }, { type: 'int_type', loc: ['payload', 'n'] }])
})

test('an outgoing message is checked against its typebox 1.x schema, and an invalid one is not sent', async (t) => {
  const app = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await open(app, '/ws')
  await client.next()
  client.send({ action: 'invalid', payload: null })
  client.send({ action: 'ping', payload: null })
  t.equal(await client.next(), '{"action":"pong","payload":null}')
})

test('a plain JSON Schema is refused at registration, naming both TypeBox lines', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  await app.register(chanx)
  t.throws(() => app.get('/ws', { websocket: true, messages: { chat: { type: 'string' } as never }, handlers: { chat: () => undefined } }, () => {}), {
    code: 'FST_CHANX_INVALID_OPTION',
    message: 'fastify-chanx: route GET /ws: messages.chat must be a TypeBox schema (from @sinclair/typebox 0.34 or typebox 1.x)'
  })
})
