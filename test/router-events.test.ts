import { test } from 'tap'
import { Type } from '@sinclair/typebox'
import { AllowAny, defineSocketRoute } from '../plugin'
import { AUTH_OK, logCapture, open, socketApp, type Teardown } from './helpers/router-client'

/** Channel events (`events` + `eventHandlers`) as a socket of a route meets them: what is sent, what is only logged. */

type LogLine = Record<string, unknown>

/** Waits (at most `ms`) until a log line matches. */
async function logged (lines: LogLine[], match: (line: LogLine) => boolean, ms = 2000): Promise<LogLine> {
  const deadline = Date.now() + ms
  for (;;) {
    const line = lines.find(match)
    if (line !== undefined) return line
    if (Date.now() > deadline) throw new Error(`no such log line within ${ms} ms: ${JSON.stringify(lines)}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function eventApp (t: Teardown) {
  const log = logCapture()
  const app = await socketApp(t, { server: { logger: { level: 'warn', stream: log.stream } } })
  app.route(defineSocketRoute({
    url: '/ws',
    groups: () => ['room'],
    messages: { fire: Type.Object({ name: Type.String(), payload: Type.Unknown() }) },
    handlers: {
      // ctx.sendEvent without groups: to the socket's own groups, so back to this socket.
      fire: async (message, ctx) => { await ctx.sendEvent(message.payload.name, message.payload.payload) }
    },
    events: {
      greet: Type.Object({ text: Type.String() }),
      later: Type.Null(),
      boom: Type.Null(),
      fails: Type.Null(),
      quiet: Type.Null()
    },
    eventHandlers: {
      greet: (payload) => ({ action: 'greeting', payload }),
      later: async () => ({ action: 'later', payload: null }),
      boom: () => { throw new Error('event boom') },
      fails: async () => { throw new Error('event rejected') },
      quiet: () => undefined
    }
  }))
  await app.ready()
  const client = await open(app, '/ws')
  return { app, client, lines: log.lines }
}

test('a channel event runs its handler and what it returns, sync or async, is sent to the socket', async (t) => {
  const { app, client } = await eventApp(t)
  t.equal(await client.next(), AUTH_OK)
  client.send({ action: 'fire', payload: { name: 'greet', payload: { text: 'hi' } } })
  t.equal(await client.next(), '{"action":"greeting","payload":{"text":"hi"}}')
  await app.chanx.sendEvent('room', 'later', null)
  t.equal(await client.next(), '{"action":"later","payload":null}')
})

test('an event whose payload does not match its schema is logged with its name and not handled', async (t) => {
  const { app, client, lines } = await eventApp(t)
  await client.next()
  await app.chanx.sendEvent('room', 'greet', { text: 42 })
  const line = await logged(lines, (l) => l.msg === 'fastify-chanx: a channel event does not match its schema; not handled')
  t.equal(line.event, 'greet')
  t.equal(line.level, 40)
  client.send({ action: 'ping' })
  t.equal(await client.next(), '{"action":"pong","payload":null}', 'nothing was sent for the bad event')
})

test('an event handler that throws or rejects is logged and the connection lives', async (t) => {
  const { app, client, lines } = await eventApp(t)
  await client.next()
  await app.chanx.sendEvent('room', 'boom', null)
  const thrown = await logged(lines, (l) => l.msg === 'fastify-chanx: a channel event handler failed' && l.event === 'boom')
  t.equal((thrown.err as { message: string }).message, 'event boom')
  await app.chanx.sendEvent('room', 'fails', null)
  const rejected = await logged(lines, (l) => l.msg === 'fastify-chanx: a channel event handler failed' && l.event === 'fails')
  t.equal((rejected.err as { message: string }).message, 'event rejected')
  client.send({ action: 'ping' })
  t.equal(await client.next(), '{"action":"pong","payload":null}')
  t.equal(client.closeCode, null)
})

test('an event the route does not declare, or whose handler returns nothing, sends nothing', async (t) => {
  const { app, client, lines } = await eventApp(t)
  await client.next()
  await app.chanx.sendEvent('room', 'undeclared', { text: 'x' })
  await app.chanx.sendEvent('room', 'quiet', null)
  client.send({ action: 'ping' })
  t.equal(await client.next(), '{"action":"pong","payload":null}')
  t.same(lines, [], 'nothing logged either')
})

async function routeError (t: Teardown, options: Record<string, unknown>, websocket = true): Promise<Error | undefined> {
  const app = await socketApp(t)
  try {
    app.get('/ws', { websocket, ...options } as never, () => {})
    await app.ready()
  } catch (err) {
    return err as Error
  }
  return undefined
}

test('events options are checked at registration, naming the route and the event', async (t) => {
  const cases: Array<[Record<string, unknown>, string, boolean?]> = [
    [{ events: [Type.Null()] }, 'events must be an object of TypeBox schemas keyed by event name'],
    [{ events: { e: Type.Null() }, eventHandlers: 'x' }, 'eventHandlers must be an object of functions keyed by event name'],
    [{ events: { e: Type.Null() }, eventHandlers: { e: () => {}, f: () => {} } }, 'event handler "f" has no schema (events.f)'],
    [{ events: { e: { type: 'null' } }, eventHandlers: { e: () => {} } }, 'events.e must be a TypeBox schema (from @sinclair/typebox 0.34 or typebox 1.x)'],
    // An HTTP route is checked once it uses the plugin (here through permissions).
    [{ permissions: [AllowAny], events: { e: Type.Null() }, eventHandlers: { e: () => {} } }, 'events are only for WebSocket routes (websocket: true)', false],
    [{ messages: {}, handlers: [] }, 'handlers must be an object of functions keyed by action'],
    [{ messages: {}, outgoing: [Type.Null()] }, 'outgoing must be an object of TypeBox schemas keyed by action']
  ]
  for (const [options, message, websocket] of cases) {
    const err = await routeError(t, options, websocket)
    t.equal((err as { code?: string } | undefined)?.code, 'FST_CHANX_INVALID_OPTION', message)
    t.equal(err?.message, `fastify-chanx: route GET /ws: ${message}`)
  }
})

test('a TypeBox schema that cannot be compiled fails at registration with the compiler\'s reason', async (t) => {
  // A reference to a schema $id nobody declared: TypeCompiler refuses it.
  const err = await routeError(t, { messages: { chat: Type.Ref('Missing') }, handlers: { chat: () => {} } })
  t.equal((err as { code?: string } | undefined)?.code, 'FST_CHANX_INVALID_OPTION')
  t.match(err?.message, /^fastify-chanx: route GET \/ws: messages\.chat could not be compiled: .+/)
})

test('a route with events and no messages still answers ping and refuses unknown actions', async (t) => {
  const app = await socketApp(t)
  // defineSocketRoute's types ask for messages; the plugin itself accepts events alone.
  app.get('/ws', {
    websocket: true,
    groups: () => ['room'],
    events: { greet: Type.Object({ text: Type.String() }) },
    eventHandlers: { greet: (payload: unknown) => ({ action: 'greeting', payload }) }
  } as never, () => {})
  await app.ready()
  const client = await open(app, '/ws')
  t.equal(await client.next(), AUTH_OK)
  client.send({ action: 'ping' })
  t.equal(await client.next(), '{"action":"pong","payload":null}')
  await app.chanx.sendEvent('room', 'greet', { text: 'hello' })
  t.equal(await client.next(), '{"action":"greeting","payload":{"text":"hello"}}')
})
