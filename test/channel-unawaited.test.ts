import { test } from 'tap'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import chanx, { defineSocketRoute } from '../plugin'
import { closeApp, connect } from '../plugin/testing'

/** Every rejection nobody handled while `fn` runs (and a few ticks after), counted. */
async function unhandledDuring (fn: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = []
  const onUnhandled = (reason: unknown): void => { seen.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  try {
    await fn()
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.removeListener('unhandledRejection', onUnhandled)
  }
  return seen
}

const hostile = new Proxy({}, {
  get () { throw new Error('hostile get') },
  getPrototypeOf () { throw new Error('hostile getPrototypeOf') }
})

async function buildApp () {
  const lines: Array<{ level: number, msg: string, err?: unknown }> = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const app = Fastify({ logger: { level: 'warn', stream } })
  await app.register(websocket)
  await app.register(chanx)
  app.route(defineSocketRoute({
    url: '/ws',
    groups: () => ['lobby'],
    messages: { room: Type.Object({ name: Type.String() }), hostile: Type.Null() },
    handlers: {
      // Fire and forget, with a name the client chose: the mistake the issue found in the wild.
      room: (message, ctx) => {
        ctx.join(message.payload.name)
        ctx.broadcast({ action: 'hello', payload: null }, { groups: message.payload.name })
        ctx.sendEvent('ev', null, { groups: message.payload.name })
        ctx.leave(message.payload.name)
        return { action: 'room', payload: 'asked' }
      },
      hostile: (_message, ctx) => {
        ctx.broadcast({ action: 'hostile', get payload () { throw hostile } })
        return { action: 'hostile', payload: 'asked' }
      }
    }
  }))
  await app.ready()
  return { app, lines }
}

test('an unawaited ctx.join, broadcast, sendEvent or leave with a client-chosen bad group name neither crashes nor silences the socket', async (t) => {
  const { app, lines } = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  await client.authentication()
  const unhandled = await unhandledDuring(async () => {
    for (const name of ['', 'x'.repeat(257)]) {
      client.sendAction('room', { name })
      t.same(await client.receive(), { action: 'room', payload: 'asked' })
    }
    client.sendAction('ping')
    t.same(await client.receive(), { action: 'pong', payload: null }, 'the socket still answers')
  })
  t.same(unhandled, [], 'no unhandled rejection')
  const refused = lines.filter((l) => l.msg === 'fastify-chanx: a channel call was refused')
  t.equal(refused.length, 8, 'each refused call logged once at warn')
  t.match(refused[0], { level: 40, err: { code: 'FST_CHANX_INVALID_CHANNEL_ARGUMENT' } })
})

test('a broadcast whose message throws a hostile Proxy while serializing is logged and refused, never fatal', async (t) => {
  const { app, lines } = await buildApp()
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  await client.authentication()
  const unhandled = await unhandledDuring(async () => {
    client.sendAction('hostile')
    t.same(await client.receive(), { action: 'hostile', payload: 'asked' })
    client.sendAction('ping')
    t.same(await client.receive(), { action: 'pong', payload: null })
  })
  t.same(unhandled, [], 'no unhandled rejection')
  t.match(lines.find((l) => l.msg === 'fastify-chanx: a channel call was refused'), {
    level: 40,
    err: { code: 'FST_CHANX_INVALID_CHANNEL_ARGUMENT', message: 'fastify-chanx: a broadcast message must serialize to JSON: an unreadable object' }
  })
})

test('app.chanx rejects a bad group for a caller that awaits, and an unawaited call is only logged', async (t) => {
  const { app, lines } = await buildApp()
  t.teardown(() => closeApp(app))
  await t.rejects(app.chanx.broadcast('', { a: 1 }), { code: 'FST_CHANX_INVALID_CHANNEL_ARGUMENT' })
  const unhandled = await unhandledDuring(async () => {
    app.chanx.broadcast('x'.repeat(257), { a: 1 })
    app.chanx.sendEvent('', 'ev')
    app.chanx.sendToUser(null, { a: 1 })
    app.chanx.groupSize('')
  })
  t.same(unhandled, [])
  t.equal(lines.filter((l) => l.msg === 'fastify-chanx: a channel call was refused').length, 5)
})
