import { test } from 'tap'
import Fastify from 'fastify'
import cookie from '@fastify/cookie'
import websocket from '@fastify/websocket'
import chanx from '../plugin'
import { closeApp, connect } from '../plugin/testing'

/** The rest of ChanxTestClient (fastify-chanx/testing): cookies, raw frames, unexpected first messages, closing. */

async function buildApp (t: { teardown (fn: () => unknown): void }) {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(cookie)
  await app.register(websocket)
  await app.register(chanx)
  app.get('/ws/cookies', { websocket: true }, (socket, request) => { socket.send(JSON.stringify({ action: 'cookies', payload: request.cookies })) })
  app.get('/ws/raw', { websocket: true, sendAuthenticationMessage: false }, (socket) => {
    socket.send('not json')
    socket.send('[1,2]')
    socket.on('message', (data) => {
      const text = data.toString()
      if (text === 'close') socket.close(4000, 'asked')
      else socket.send(text)
    })
  })
  await app.ready()
  return app
}

test('cookies given as a header string or as an object reach the server, values encoded', async (t) => {
  const app = await buildApp(t)
  const asString = await connect(app, '/ws/cookies', { cookies: 'a=1; b=two' })
  await asString.authentication()
  t.same(await asString.receive(), { action: 'cookies', payload: { a: '1', b: 'two' } })
  const asObject = await connect(app, '/ws/cookies', { cookies: { a: 'x y', b: 'é' } })
  await asObject.authentication()
  t.same(await asObject.receive(), { action: 'cookies', payload: { a: 'x y', b: 'é' } })
})

test('a frame that is not a JSON object is received as { raw }', async (t) => {
  const app = await buildApp(t)
  const client = await connect(app, '/ws/raw')
  t.same(await client.receive(), { raw: 'not json' })
  t.same(await client.receive(), { raw: '[1,2]' })
  client.send('plain text')
  t.same(await client.receive(), { raw: 'plain text' })
  client.send({ action: 'echo' })
  t.same(await client.receive(), { action: 'echo' })
})

test('authentication() rejects when the first message is something else', async (t) => {
  const app = await buildApp(t)
  const client = await connect(app, '/ws/raw')
  await t.rejects(client.authentication(), { message: 'expected the authentication message first, got {"raw":"not json"}' })
})

test('a receive waiting when the socket closes rejects with the close code; closed() and reason report it', async (t) => {
  const app = await buildApp(t)
  const client = await connect(app, '/ws/raw')
  await client.receive()
  await client.receive()
  const waiting = client.receive()
  client.send('close')
  await t.rejects(waiting, { message: 'the socket closed (4000) before a message arrived' })
  t.equal(await client.closed(), 4000)
  t.equal(client.reason, 'asked')
})

test('close() closes with the given code, which the server echoes back', async (t) => {
  const app = await buildApp(t)
  const client = await connect(app, '/ws/raw')
  await client.receive()
  client.close(4100)
  t.equal(await client.closed(), 4100)
})

test('terminate() drops the connection without a close frame: 1006', async (t) => {
  const app = await buildApp(t)
  const client = await connect(app, '/ws/raw')
  await client.receive()
  client.terminate()
  t.equal(await client.closed(), 1006)
})
