import { test } from 'tap'
import { Type } from '@sinclair/typebox'
import { defineSocketRoute } from '../plugin'
import { socketApp, type Teardown } from './helpers/router-client'

async function register (t: Teardown, options: Record<string, unknown>, websocketRoute = true): Promise<Error | undefined> {
  const app = await socketApp(t)
  try {
    app.get('/ws', { websocket: websocketRoute, ...options } as never, () => {})
    await app.ready()
  } catch (err) {
    return err as Error
  }
  return undefined
}

test('a schema without a handler fails at registration, naming the action', async (t) => {
  const err = await register(t, { messages: { chat: Type.Null(), join: Type.Null() }, handlers: { chat: () => {} } })
  t.equal((err as { code?: string }).code, 'FST_CHANX_INVALID_OPTION')
  t.equal(err?.message, 'fastify-chanx: route GET /ws: message "join" has a schema but no handler (handlers.join)')
})

test('a handler without a schema fails at registration, naming the action', async (t) => {
  const err = await register(t, { messages: { chat: Type.Null() }, handlers: { chat: () => {}, leave: () => {} } })
  t.equal(err?.message, 'fastify-chanx: route GET /ws: handler "leave" has no schema (messages.leave)')
})

test('a schema that is not TypeBox, or a handler that is not a function, is refused', async (t) => {
  t.equal((await register(t, { messages: { chat: { type: 'string' } }, handlers: { chat: () => {} } }))?.message,
    'fastify-chanx: route GET /ws: messages.chat must be a TypeBox schema (from @sinclair/typebox 0.34 or typebox 1.x)')
  t.equal((await register(t, { messages: { chat: Type.Null() }, handlers: { chat: 'nope' } }))?.message,
    'fastify-chanx: route GET /ws: handlers.chat must be a function (message, ctx)')
  t.equal((await register(t, { messages: [Type.Null()] }))?.message,
    'fastify-chanx: route GET /ws: messages must be an object of TypeBox schemas keyed by action')
  t.equal((await register(t, { messages: {}, outgoing: { x: 1 } }))?.message,
    'fastify-chanx: route GET /ws: outgoing.x must be a TypeBox schema (from @sinclair/typebox 0.34 or typebox 1.x)')
})

test('numeric and boolean options are checked', async (t) => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ concurrency: 0 }, 'concurrency must be a positive integer'],
    [{ concurrency: 1.5 }, 'concurrency must be a positive integer'],
    [{ maxPayload: -1 }, 'maxPayload must be a positive integer'],
    [{ maxDepth: '64' }, 'maxDepth must be a positive integer'],
    [{ sendCompletion: 'yes' }, 'sendCompletion must be a boolean'],
    [{ acceptBinary: 1 }, 'acceptBinary must be a boolean'],
    [{ validateOutgoing: true }, 'validateOutgoing needs outgoing schemas'],
    [{ actionKey: '' }, 'actionKey must be a non-empty string other than "payload"'],
    [{ onAuthenticated: 'x' }, 'onAuthenticated must be a function'],
    [{ onClose: {} }, 'onClose must be a function']
  ]
  for (const [options, message] of cases) {
    const err = await register(t, { messages: {}, ...options })
    t.equal(err?.message, `fastify-chanx: route GET /ws: ${message}`, JSON.stringify(options))
  }
})

test('message options without messages are refused', async (t) => {
  t.equal((await register(t, { handlers: { chat: () => {} } }))?.message,
    'fastify-chanx: route GET /ws: handlers needs messages (an object of TypeBox schemas keyed by action)')
  t.equal((await register(t, { sendCompletion: true }))?.message,
    'fastify-chanx: route GET /ws: sendCompletion needs messages (an object of TypeBox schemas keyed by action)')
})

test('messages on a plain HTTP route that runs the pipeline are refused', async (t) => {
  const err = await register(t, { messages: {}, permissions: [] }, false)
  t.equal(err?.message, 'fastify-chanx: route GET /ws: messages are only for WebSocket routes (websocket: true)')
})

test('defineSocketRoute makes a GET websocket route that registers cleanly', async (t) => {
  const app = await socketApp(t)
  const route = defineSocketRoute({ url: '/ws', messages: { a: Type.Null() }, handlers: { a: () => {} } })
  t.equal(route.method, 'GET')
  t.equal(route.websocket, true)
  app.route(route)
  await app.ready()
  t.ok(app.hasRoute({ method: 'GET', url: '/ws' }))
  t.throws(() => defineSocketRoute(null as never), { code: 'FST_CHANX_INVALID_OPTION' })
})
