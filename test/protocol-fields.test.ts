import { test, type Test } from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import { WebSocket } from 'ws'
import chanx, { defineSocketRoute, IsAuthenticated, jwtAuthentication } from '../plugin'
import { createClient } from '../plugin/client'
import { closeApp } from '../plugin/testing'
import { AUTH_OK, openReal } from './helpers/router-client'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A room whose `relay` handler broadcasts the client's frame as it came, the way a careless chat handler would. */
const relayRoute = defineSocketRoute({
  url: '/ws/relay',
  permissions: [IsAuthenticated],
  groups: () => ['room'],
  messages: {
    relay: Type.Object({ text: Type.String() }),
    mirror: Type.Object({ text: Type.String() }),
    forge: Type.Null(),
    echo: Type.Object({ text: Type.String(), delay: Type.Integer() })
  },
  handlers: {
    relay: async (message, ctx) => { await ctx.broadcast(message) },
    mirror: (message, ctx) => { ctx.send(message) },
    forge: () => ({ action: 'forged', payload: null, id: 1, chanx_upos: [9, 'x'], is_current: true }),
    echo: async (message) => { await sleep(message.payload.delay); return { action: 'echo', payload: { text: message.payload.text } } }
  }
})

async function relayApp (t: Test) {
  const app = Fastify()
  await app.register(jwt, { secret: 'a-protocol-fields-test-secret-32-chars' })
  await app.register(websocket)
  await app.register(chanx, { authentication: [jwtAuthentication({ query: 'token' })] })
  app.route(relayRoute)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => closeApp(app))
  const address = app.server.address() as { port: number }
  return { app, url: (sub: string) => `ws://127.0.0.1:${address.port}/ws/relay?token=${app.jwt.sign({ sub })}` }
}

const forged = { id: 1, chanx_pos: { room: [99, 'x'] }, chanx_upos: [99, 'x'], is_mine: true, is_current: true, chanx_recovery: null }

test('a relayed frame reaches the other members without the id, positions and flags its sender put on it', async (t) => {
  const { url } = await relayApp(t)
  const alice = await openReal(url('alice'))
  const mallory = await openReal(url('mallory'))
  t.teardown(() => { alice.socket.close(); mallory.socket.close() })
  t.equal(await alice.next(), AUTH_OK)
  t.equal(await mallory.next(), AUTH_OK)
  mallory.send({ action: 'relay', payload: { text: 'hi' }, ...forged })
  t.equal(await alice.next(), '{"action":"relay","payload":{"text":"hi"},"is_mine":false,"is_current":false}')
})

test('sendToUser strips the fields only the server sets', async (t) => {
  const { app, url } = await relayApp(t)
  const alice = await openReal(url('alice'))
  t.teardown(() => alice.socket.close())
  t.equal(await alice.next(), AUTH_OK)
  await app.chanx.sendToUser('alice', { action: 'note', payload: 1, ...forged })
  t.equal(await alice.next(), '{"action":"note","payload":1}')
})

test('what a handler sends or returns carries no id but the one of the frame it answers', async (t) => {
  const { url } = await relayApp(t)
  const alice = await openReal(url('alice'))
  t.teardown(() => alice.socket.close())
  t.equal(await alice.next(), AUTH_OK)
  alice.send({ action: 'mirror', payload: { text: 'me' }, id: 7 })
  t.equal(await alice.next(), '{"action":"mirror","payload":{"text":"me"}}', 'ctx.send: no id')
  alice.send({ action: 'forge', payload: null })
  t.equal(await alice.next(), '{"action":"forged","payload":null}', 'a returned reply to a frame without id: no id')
  alice.send({ action: 'forge', payload: null, id: 'r1' })
  t.equal(await alice.next(), '{"action":"forged","payload":null,"id":"r1"}', 'a returned reply: the frame\'s id only')
})

test('another member\'s relayed frame with my request\'s id does not settle my request', async (t) => {
  const { url } = await relayApp(t)
  const alice = createClient<typeof relayRoute>(url('alice'), { WebSocket })
  t.teardown(() => alice.close())
  await alice.connect()
  const mallory = await openReal(url('mallory'))
  t.teardown(() => mallory.socket.close())
  t.equal(await mallory.next(), AUTH_OK)
  const seen: unknown[] = []
  alice.on('message', (message) => seen.push(message))
  const reply = alice.request('echo', { text: 'mine', delay: 300 })
  mallory.send({ action: 'relay', payload: { text: 'forged reply' }, id: 1 })
  t.same(await reply, { action: 'echo', payload: { text: 'mine' }, id: 1 }, 'the request got its own reply')
  t.same(seen, [{ action: 'relay', payload: { text: 'forged reply' }, is_mine: false, is_current: false }], 'the relayed frame is a message')
})
