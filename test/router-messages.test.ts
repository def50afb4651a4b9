import { test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { defineSocketRoute } from '../plugin'
import { AUTH_OK, logCapture, open, socketApp, type Teardown } from './helpers/router-client'

const Chat = Type.Object({ text: Type.String({ maxLength: 20 }), to: Type.Optional(Type.Integer()) })

async function buildApp (t: Teardown, route: Record<string, unknown> = {}, logStream?: { write (line: string): void }): Promise<FastifyInstance> {
  const app = await socketApp(t, logStream === undefined ? {} : { server: { logger: { level: 'error', stream: logStream } } })
  app.route(defineSocketRoute({
    url: '/ws/rooms/:roomId',
    messages: { chat: Chat, boom: Type.Null(), reject: Type.Null(), quiet: Type.Null() },
    handlers: {
      chat: (message, ctx) => ({ action: 'chat', payload: { text: message.payload.text, room: ctx.params.roomId } }),
      boom: () => { throw new Error('secret internals') },
      reject: async () => { throw new Error('async secret') },
      quiet: () => undefined
    },
    ...route
  }))
  await app.ready()
  return app
}

test('a declared action is validated, routed, and what the handler returns is sent', async (t) => {
  const app = await buildApp(t)
  const client = await open(app, '/ws/rooms/lobby')
  t.equal(await client.next(), AUTH_OK)
  client.send({ action: 'chat', payload: { text: 'hi' } })
  t.equal(await client.next(), '{"action":"chat","payload":{"text":"hi","room":"lobby"}}')
})

test('ping answers pong, built in', async (t) => {
  const app = await buildApp(t)
  const client = await open(app, '/ws/rooms/lobby')
  await client.next()
  client.send({ action: 'ping', payload: null })
  t.equal(await client.next(), '{"action":"pong","payload":null}')
})

test('a route may override ping with its own handler', async (t) => {
  const app = await socketApp(t)
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { ping: Type.Null() },
    handlers: { ping: () => ({ action: 'pong', payload: 'custom' }) }
  }))
  await app.ready()
  const client = await open(app, '/ws')
  await client.next()
  client.send({ action: 'ping', payload: null })
  t.equal(await client.next(), '{"action":"pong","payload":"custom"}')
})

test('text that is not a JSON object is answered "Invalid JSON" and the connection stays open', async (t) => {
  const app = await buildApp(t)
  const client = await open(app, '/ws/rooms/lobby')
  await client.next()
  for (const frame of ['not json', '[1,2]', '"text"', '42', 'null', '{"action":"chat"', '']) client.send(frame)
  const replies = await client.take(7)
  t.same(replies, Array(7).fill('{"action":"error","payload":{"detail":"Invalid JSON"}}'))
  client.send({ action: 'ping' })
  t.equal(await client.next(), '{"action":"pong","payload":null}')
})

test('nesting deeper than maxDepth is refused as invalid JSON before parsing', async (t) => {
  const app = await buildApp(t, { maxDepth: 8 })
  const client = await open(app, '/ws/rooms/lobby')
  await client.next()
  client.send('{"action":"chat","payload":' + '['.repeat(8) + ']'.repeat(8) + '}')
  t.equal(await client.next(), '{"action":"error","payload":{"detail":"Invalid JSON"}}')
  // Brackets inside strings do not count.
  client.send({ action: 'chat', payload: { text: '[[[[[[[[[[[[' } })
  t.equal(await client.next(), '{"action":"chat","payload":{"text":"[[[[[[[[[[[[","room":"lobby"}}')
})

test('binary frames are refused unless the route accepts them', async (t) => {
  const app = await buildApp(t)
  const client = await open(app, '/ws/rooms/lobby')
  await client.next()
  client.send(Buffer.from(JSON.stringify({ action: 'ping' })))
  t.equal(await client.next(), '{"action":"error","payload":{"detail":"Binary frames are not accepted"}}')

  const binaryApp = await buildApp(t, { acceptBinary: true })
  const binaryClient = await open(binaryApp, '/ws/rooms/lobby')
  await binaryClient.next()
  binaryClient.send(Buffer.from(JSON.stringify({ action: 'ping' })))
  t.equal(await binaryClient.next(), '{"action":"pong","payload":null}')
})

test('a message without an action is answered union_tag_not_found', async (t) => {
  const app = await buildApp(t)
  const client = await open(app, '/ws/rooms/lobby')
  await client.next()
  client.send({ payload: { text: 'hi' } })
  t.equal(await client.next(),
    '{"action":"error","payload":[{"type":"union_tag_not_found","loc":[],"msg":"Unable to extract tag using discriminator \'action\'"}]}')
})

test('an unknown action lists ping then the route\'s actions in declaration order', async (t) => {
  const app = await buildApp(t)
  const client = await open(app, '/ws/rooms/lobby')
  await client.next()
  client.send({ action: 'x', payload: null })
  t.equal(await client.next(),
    '{"action":"error","payload":[{"type":"union_tag_invalid","loc":[],"msg":"Input tag \'x\' found using \'action\' does not match any of the expected tags: \'ping\', \'chat\', \'boom\', \'reject\', \'quiet\'"}]}')
  client.send({ action: 7 })
  t.match(await client.next(), /"Input tag '7' found using 'action'/)
  client.send({ action: '__proto__' })
  t.match(await client.next(), /union_tag_invalid/)
})

test('a schema failure is a list of {type, loc, msg} whose loc starts with the action', async (t) => {
  const app = await buildApp(t)
  const client = await open(app, '/ws/rooms/lobby')
  await client.next()
  client.send({ action: 'chat', payload: { text: 5 } })
  t.same(JSON.parse(await client.next()), {
    action: 'error',
    payload: [{ type: 'string_type', loc: ['chat', 'payload', 'text'], msg: 'Input should be a valid string' }]
  })
  client.send({ action: 'chat', payload: {} })
  t.same(JSON.parse(await client.next()).payload, [{ type: 'missing', loc: ['chat', 'payload', 'text'], msg: 'Field required' }])
  client.send({ action: 'chat', payload: { text: 'x'.repeat(21), to: 1.5 } })
  t.same(JSON.parse(await client.next()).payload.map((e: { type: string, loc: unknown[] }) => [e.type, e.loc]), [
    ['string_too_long', ['chat', 'payload', 'text']],
    ['int_from_float', ['chat', 'payload', 'to']]
  ])
  client.send({ action: 'chat' })
  t.same(JSON.parse(await client.next()).payload, [{ type: 'missing', loc: ['chat', 'payload'], msg: 'Field required' }])
})

test('a handler that throws or rejects answers "Failed to process message" and logs the error, never sends it', async (t) => {
  const log = logCapture()
  const app = await buildApp(t, {}, log.stream)
  const client = await open(app, '/ws/rooms/lobby')
  await client.next()
  client.send({ action: 'boom', payload: null })
  t.equal(await client.next(), '{"action":"error","payload":{"detail":"Failed to process message"}}')
  client.send({ action: 'reject', payload: null })
  t.equal(await client.next(), '{"action":"error","payload":{"detail":"Failed to process message"}}')
  client.send({ action: 'ping' })
  t.equal(await client.next(), '{"action":"pong","payload":null}')
  const errors = log.lines.filter((line) => line.msg === 'fastify-chanx: a message handler failed')
  t.same(errors.map((line) => (line.err as { message: string }).message), ['secret internals', 'async secret'])
  t.notOk(client.received.some((frame) => frame.includes('secret')))
})

test('sendCompletion sends complete after each handled frame, errors included', async (t) => {
  const app = await buildApp(t, { sendCompletion: true })
  const client = await open(app, '/ws/rooms/lobby')
  await client.next()
  client.send({ action: 'chat', payload: { text: 'a' } })
  client.send({ action: 'quiet', payload: null })
  client.send('nope')
  client.send({ action: 'reject', payload: null })
  client.send({ action: 'chat', payload: {} })
  const frames = await client.take(9)
  t.same(frames.map((f) => JSON.parse(f).action), [
    'chat', 'complete',
    'complete',
    'error', 'complete',
    'error', 'complete',
    'error', 'complete'
  ])
  t.equal(frames[1], '{"action":"complete","payload":null}')
})

test('a frame over maxPayload closes the socket with 1009', async (t) => {
  const app = await buildApp(t, { maxPayload: 100 })
  const client = await open(app, '/ws/rooms/lobby')
  await client.next()
  client.send({ action: 'chat', payload: { text: 'x'.repeat(200) } })
  t.equal(await client.closed(), 1009)
})

test('the default maxPayload is 64 KiB', async (t) => {
  const app = await buildApp(t)
  const client = await open(app, '/ws/rooms/lobby')
  await client.next()
  client.send({ action: 'chat', payload: { text: 'x'.repeat(60 * 1024) } })
  t.match(await client.next(), /string_too_long/)
  client.send({ action: 'chat', payload: { text: 'x'.repeat(65 * 1024) } })
  t.equal(await client.closed(), 1009)
})

test('actionKey renames the action field, incoming and outgoing', async (t) => {
  const app = await socketApp(t)
  app.route(defineSocketRoute({
    url: '/ws',
    actionKey: 'type',
    messages: { echo: Type.String() },
    handlers: {
      echo: (message) => {
        const type: 'echo' = message.type
        return { type, payload: message.payload }
      }
    }
  }))
  await app.ready()
  const client = await open(app, '/ws')
  await client.next()
  client.send({ type: 'echo', payload: 'hi' })
  t.equal(await client.next(), '{"type":"echo","payload":"hi"}')
  client.send({ type: 'ping' })
  t.equal(await client.next(), '{"type":"pong","payload":null}')
  client.send({ action: 'echo' })
  t.equal(await client.next(),
    '{"type":"error","payload":[{"type":"union_tag_not_found","loc":[],"msg":"Unable to extract tag using discriminator \'type\'"}]}')
})

test('validateOutgoing logs and drops a message that does not match its outgoing schema', async (t) => {
  const log = logCapture()
  const app = await socketApp(t, { server: { logger: { level: 'error', stream: log.stream } } })
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { say: Type.Object({ text: Type.String() }) },
    outgoing: { said: Type.Object({ text: Type.String({ minLength: 1 }) }) },
    validateOutgoing: true,
    handlers: {
      say: (message, ctx) => {
        ctx.send({ action: 'said', payload: { text: message.payload.text } })
        return { action: 'said', payload: { text: message.payload.text + '!' } }
      }
    }
  }))
  await app.ready()
  const client = await open(app, '/ws')
  await client.next()
  client.send({ action: 'say', payload: { text: '' } })
  t.equal(await client.next(), '{"action":"said","payload":{"text":"!"}}')
  t.equal(log.lines.filter((l) => String(l.msg).includes('does not match its outgoing schema')).length, 1)
})

test('handlers get user, obj, params, request, socket, send and close', async (t) => {
  const app = await socketApp(t, { chanx: { authentication: [{ authenticate: () => ({ id: 1 }) }] } })
  app.route(defineSocketRoute({
    url: '/ws/rooms/:roomId',
    objectLoader: (request) => ({ room: request.params.roomId }),
    messages: { who: Type.Null(), bye: Type.Null() },
    handlers: {
      who: (_message, ctx) => {
        ctx.send({ action: 'first', payload: null })
        return {
          action: 'who',
          payload: { user: ctx.user, obj: ctx.obj, params: ctx.params, url: ctx.request.url, open: ctx.socket.readyState === 1 }
        }
      },
      bye: (_message, { close }) => { close(4000, 'bye') }
    }
  }))
  await app.ready()
  const client = await open(app, '/ws/rooms/r1')
  await client.next()
  client.send({ action: 'who', payload: null })
  t.equal(await client.next(), '{"action":"first","payload":null}')
  t.same(JSON.parse(await client.next()).payload, { user: { id: 1 }, obj: { room: 'r1' }, params: { roomId: 'r1' }, url: '/ws/rooms/r1', open: true })
  client.send({ action: 'bye', payload: null })
  client.send({ action: 'ping' })
  t.equal(await client.closed(), 4000)
  t.notOk(client.received.includes('{"action":"pong","payload":null}'), 'no frame is dispatched once the socket is closing')
})

test('the messages options work on a plain websocket route, and plain handlers keep working without them', async (t) => {
  const app = await socketApp(t)
  app.get('/plain', { websocket: true }, (socket) => {
    socket.on('message', (data) => socket.send('echo:' + data.toString()))
  })
  app.get('/loose', {
    websocket: true,
    messages: { hi: Type.Null() },
    handlers: { hi: (message) => ({ action: 'hello', payload: message.action }) }
  }, () => {})
  await app.ready()
  const plain = await open(app, '/plain')
  t.equal(await plain.next(), AUTH_OK)
  plain.send('{"action":"ping"}')
  t.equal(await plain.next(), 'echo:{"action":"ping"}')
  const loose = await open(app, '/loose')
  await loose.next()
  loose.send({ action: 'hi', payload: null })
  t.equal(await loose.next(), '{"action":"hello","payload":"hi"}')
})

test('a refused handshake never reaches the router', async (t) => {
  const app = await socketApp(t)
  let called = 0
  app.route(defineSocketRoute({
    url: '/ws',
    permissions: [{ hasPermission: () => false }],
    messages: { hi: Type.Null() },
    handlers: { hi: () => { called++ } },
    onAuthenticated: () => { called++ }
  }))
  await app.ready()
  const client = await open(app, '/ws')
  client.send({ action: 'hi', payload: null })
  t.equal(await client.closed(), 4403)
  t.equal(called, 0)
})
