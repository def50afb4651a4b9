import { test } from 'tap'
import { Type } from '@sinclair/typebox'
import { defineSocketRoute } from '../plugin'
import { injectSocket } from './helpers/handshake'
import { AUTH_OK, listenUrl, logCapture, open, openReal, socketApp, type Teardown } from './helpers/router-client'

/** The hooks and ctx.close of a message route, and replies that cannot be sent: what the client sees, what is logged. */

type LogLine = Record<string, unknown>

async function logged (lines: LogLine[], msg: string, ms = 2000): Promise<LogLine> {
  const deadline = Date.now() + ms
  for (;;) {
    const line = lines.find((l) => l.msg === msg)
    if (line !== undefined) return line
    if (Date.now() > deadline) throw new Error(`no log line "${msg}" within ${ms} ms: ${JSON.stringify(lines)}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function appWith (t: Teardown, route: Record<string, unknown>) {
  const log = logCapture()
  const app = await socketApp(t, { server: { logger: { level: 'error', stream: log.stream } } })
  app.route(defineSocketRoute({ url: '/ws', ...route } as never))
  await app.ready()
  return { app, lines: log.lines }
}

test('an onAuthenticated that throws synchronously closes the socket with 1011 "Internal error" and is logged', async (t) => {
  const { app, lines } = await appWith(t, {
    messages: { chat: Type.Null() },
    handlers: { chat: () => ({ action: 'chat', payload: null }) },
    onAuthenticated: () => { throw new Error('sync hook failure') }
  })
  const socket = await injectSocket(app, '/ws')
  t.equal(await socket.closed(), 1011)
  t.equal(socket.reason, 'Internal error')
  t.same(socket.messages, [AUTH_OK])
  const line = await logged(lines, 'fastify-chanx: onAuthenticated failed; closing the socket')
  t.equal((line.err as { message: string }).message, 'sync hook failure')
})

test('a synchronous onAuthenticated runs before the first frame is handled', async (t) => {
  const { app } = await appWith(t, {
    messages: { chat: Type.Null() },
    handlers: { chat: () => ({ action: 'chat', payload: null }) },
    onAuthenticated: (ctx: { send (message: unknown): void }) => { ctx.send({ action: 'welcome', payload: null }) }
  })
  const client = await open(app, '/ws')
  client.send({ action: 'chat' })
  t.same(await client.take(3), [AUTH_OK, '{"action":"welcome","payload":null}', '{"action":"chat","payload":null}'])
})

test('ctx.close with a code the protocol forbids closes with 1011 instead and is logged', async (t) => {
  const { app, lines } = await appWith(t, {
    messages: { quit: Type.Null() },
    handlers: { quit: (_message: unknown, ctx: { close (code?: number, reason?: string): void }) => { ctx.close(1005, 'no') } }
  })
  const socket = await injectSocket(app, '/ws')
  await socket.waitForMessages(1)
  socket.socket.send('{"action":"quit"}')
  t.equal(await socket.closed(), 1011)
  t.equal(socket.reason, '')
  await logged(lines, 'fastify-chanx: ctx.close was given an invalid code or reason')
})

test('ctx.close called twice closes once, with the first code and reason', async (t) => {
  const { app, lines } = await appWith(t, {
    messages: { quit: Type.Null() },
    handlers: {
      quit: (_message: unknown, ctx: { close (code?: number, reason?: string): void }) => { ctx.close(4000, 'bye'); ctx.close(4001, 'again') }
    }
  })
  const socket = await injectSocket(app, '/ws')
  await socket.waitForMessages(1)
  socket.socket.send('{"action":"quit"}')
  t.equal(await socket.closed(), 4000)
  t.equal(socket.reason, 'bye')
  t.same(lines, [])
})

test('an onClose that throws or rejects is logged; the socket is closed all the same', async (t) => {
  for (const [name, onClose] of [
    ['throws', () => { throw new Error('onClose threw') }],
    ['rejects', async () => { throw new Error('onClose rejected') }]
  ] as const) {
    const { app, lines } = await appWith(t, {
      messages: { chat: Type.Null() },
      handlers: { chat: () => undefined },
      onClose
    })
    const client = await openReal(await listenUrl(app, '/ws'))
    t.equal(await client.next(), AUTH_OK)
    client.socket.close(4000, 'client leaves')
    t.equal(await client.closed(), 4000, name)
    const line = await logged(lines, 'fastify-chanx: onClose failed')
    t.equal((line.err as { message: string }).message, name === 'throws' ? 'onClose threw' : 'onClose rejected')
  }
})

test('a reply JSON cannot serialize is logged and not sent; the connection lives', async (t) => {
  const { app, lines } = await appWith(t, {
    messages: { big: Type.Null() },
    handlers: { big: () => ({ action: 'big', payload: 10n }) }
  })
  const client = await open(app, '/ws')
  t.equal(await client.next(), AUTH_OK)
  client.send({ action: 'big' })
  client.send({ action: 'ping' })
  t.equal(await client.next(), '{"action":"pong","payload":null}')
  await logged(lines, 'fastify-chanx: an outgoing message could not be serialized to JSON; not sent')
})

test('validateOutgoing drops what is not an object, names no declared action, or misses its schema; a missing payload counts as null', async (t) => {
  const replies: unknown[] = ['just text', { action: 'undeclared', payload: null }, { action: 'count', payload: { n: 'x' } }, { action: 'done' }, { action: 'count', payload: { n: 1 } }]
  const { app, lines } = await appWith(t, {
    messages: { next: Type.Integer() },
    handlers: { next: (message: { payload: number }) => replies[message.payload] },
    outgoing: { count: Type.Object({ n: Type.Number() }), done: Type.Null() },
    validateOutgoing: true
  })
  const client = await open(app, '/ws')
  t.equal(await client.next(), AUTH_OK)
  for (let i = 0; i < replies.length; i++) client.send({ action: 'next', payload: i })
  t.same(await client.take(2), ['{"action":"done"}', '{"action":"count","payload":{"n":1}}'])
  t.equal(lines.filter((l) => l.msg === 'fastify-chanx: an outgoing message does not match its outgoing schema; not sent').length, 3)
})
