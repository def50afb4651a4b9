import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { defineSocketRoute } from '../plugin'
import { closeApp } from '../plugin/testing'
import { AUTH_OK, logCapture, open } from './helpers/router-client'

async function roomApp (sendCompletion: boolean, logStream?: { write (line: string): void }, fastifyOptions: Record<string, unknown> = {}): Promise<FastifyInstance> {
  const app = Fastify({ ...fastifyOptions, ...(logStream === undefined ? {} : { logger: { level: 'debug', stream: logStream } }) })
  await app.register(websocket)
  await app.register(chanx)
  app.route(defineSocketRoute({
    url: '/ws',
    groups: () => ['room'],
    sendCompletion,
    messages: { say: Type.Object({ text: Type.String() }) },
    handlers: { say: async (message, ctx) => { await ctx.broadcast({ action: 'said', payload: message.payload }) } },
    events: { notice: Type.Object({ text: Type.String() }) },
    eventHandlers: {
      notice: (payload) => {
        if (payload.text === 'boom') throw new Error('event failed')
        return { action: 'notice', payload }
      }
    }
  }))
  await app.ready()
  return app
}

test('with sendCompletion, a relayed group message is followed by {"action":"group_complete","payload":null}, as Chanx does', async (t) => {
  const app = await roomApp(true)
  t.teardown(() => closeApp(app))
  const sender = await open(app, '/ws')
  const listener = await open(app, '/ws')
  t.equal(await sender.next(), AUTH_OK)
  t.equal(await listener.next(), AUTH_OK)
  sender.send({ action: 'say', payload: { text: 'hi' } })
  t.equal(await sender.next(), '{"action":"complete","payload":null}', 'the sender (excluded from its broadcast) gets the frame\'s complete')
  t.same(await listener.take(2), [
    '{"action":"said","payload":{"text":"hi"},"is_mine":false,"is_current":false}',
    '{"action":"group_complete","payload":null}'
  ])
  await app.chanx.broadcast('room', { action: 'said', payload: { text: 'from the server' } })
  t.same(await listener.take(2), [
    '{"action":"said","payload":{"text":"from the server"},"is_mine":false,"is_current":false}',
    '{"action":"group_complete","payload":null}'
  ])
})

test('with sendCompletion, a channel event is followed by complete, also when its handler fails', async (t) => {
  const app = await roomApp(true)
  t.teardown(() => closeApp(app))
  const client = await open(app, '/ws')
  t.equal(await client.next(), AUTH_OK)
  await app.chanx.sendEvent('room', 'notice', { text: 'hello' })
  t.same(await client.take(2), ['{"action":"notice","payload":{"text":"hello"}}', '{"action":"complete","payload":null}'])
  await app.chanx.sendEvent('room', 'notice', { text: 'boom' })
  t.equal(await client.next(), '{"action":"complete","payload":null}')
  await app.chanx.sendEvent('room', 'notice', { wrong: 1 })
  t.equal(await client.next(), '{"action":"complete","payload":null}', 'an event its schema refuses is complete too')
})

test('without sendCompletion, neither group_complete nor complete is sent', async (t) => {
  const app = await roomApp(false)
  t.teardown(() => closeApp(app))
  const client = await open(app, '/ws')
  t.equal(await client.next(), AUTH_OK)
  await app.chanx.broadcast('room', { action: 'said', payload: { text: 'a' } })
  await app.chanx.sendEvent('room', 'notice', { text: 'b' })
  client.send({ action: 'ping' })
  t.same(await client.take(3), [
    '{"action":"said","payload":{"text":"a"},"is_mine":false,"is_current":false}',
    '{"action":"notice","payload":{"text":"b"}}',
    '{"action":"pong","payload":null}'
  ])
})

test('at debug level each frame is logged with a messageId and its receivedAction, under the x-request-id of the handshake', async (t) => {
  const log = logCapture()
  const app = await roomApp(false, log.stream, { requestIdHeader: 'x-request-id' })
  t.teardown(() => closeApp(app))
  const client = await open(app, '/ws', { 'x-request-id': 'req-42' })
  t.equal(await client.next(), AUTH_OK)
  client.send({ action: 'ping' })
  client.send({ action: 'nope' })
  await client.take(2)
  const frames = log.lines.filter((line) => line.msg === 'fastify-chanx: received frame')
  t.same(frames.map((line) => [line.reqId, line.messageId, line.receivedAction]), [
    ['req-42', 'req-42-1', 'ping'],
    ['req-42', 'req-42-2', 'nope']
  ])
})

test('above debug level no per-frame line is written', async (t) => {
  const log = logCapture()
  const app = Fastify({ logger: { level: 'info', stream: log.stream } })
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  await app.register(chanx)
  app.route(defineSocketRoute({ url: '/ws', messages: {}, handlers: {} }))
  await app.ready()
  const client = await open(app, '/ws')
  t.equal(await client.next(), AUTH_OK)
  client.send({ action: 'ping' })
  t.equal(await client.next(), '{"action":"pong","payload":null}')
  t.equal(log.lines.filter((line) => line.msg === 'fastify-chanx: received frame').length, 0)
})
