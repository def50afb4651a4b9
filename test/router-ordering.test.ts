import { test } from 'tap'
import { Type } from '@sinclair/typebox'
import { defineSocketRoute } from '../plugin'
import { AUTH_OK, listenUrl, logCapture, open, openReal, socketApp, type Teardown } from './helpers/router-client'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** `work` takes {id, ms}: waits ms, then answers done with id; the first frame is the slow one. */
async function buildApp (t: Teardown, options: Record<string, unknown> = {}): Promise<{ url: string, log: string[] }> {
  const app = await socketApp(t)
  const log: string[] = []
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { work: Type.Object({ id: Type.Integer(), ms: Type.Integer() }) },
    handlers: {
      work: async (message) => {
        log.push('start ' + message.payload.id)
        await sleep(message.payload.ms)
        log.push('end ' + message.payload.id)
        return { action: 'done', payload: message.payload.id }
      }
    },
    ...options
  }))
  return { url: await listenUrl(app, '/ws'), log }
}

test('frames of one connection are handled in arrival order: a slow handler is never overtaken', async (t) => {
  const { url, log } = await buildApp(t)
  const client = await openReal(url)
  t.equal(await client.next(), AUTH_OK)
  client.send({ action: 'work', payload: { id: 1, ms: 150 } })
  client.send({ action: 'work', payload: { id: 2, ms: 0 } })
  client.send({ action: 'ping' })
  client.send({ action: 'work', payload: { id: 3, ms: 10 } })
  client.send('not json')
  t.same(await client.take(5), [
    '{"action":"done","payload":1}',
    '{"action":"done","payload":2}',
    '{"action":"pong","payload":null}',
    '{"action":"done","payload":3}',
    '{"action":"error","payload":{"detail":"Invalid JSON"}}'
  ])
  t.same(log, ['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3'], 'no handler starts before the previous one ended')
})

test('concurrency: n lets n frames run at once', async (t) => {
  const { url, log } = await buildApp(t, { concurrency: 2 })
  const client = await openReal(url)
  await client.next()
  client.send({ action: 'work', payload: { id: 1, ms: 150 } })
  client.send({ action: 'work', payload: { id: 2, ms: 0 } })
  client.send({ action: 'work', payload: { id: 3, ms: 0 } })
  t.same(await client.take(3), ['{"action":"done","payload":2}', '{"action":"done","payload":3}', '{"action":"done","payload":1}'])
  t.same(log.slice(0, 2), ['start 1', 'start 2'])
  t.ok(log.indexOf('start 3') < log.indexOf('end 1'), 'the third starts once the second has finished, not the first')
})

test('onAuthenticated runs after the authentication message, and frames sent meanwhile wait, in order', async (t) => {
  const events: string[] = []
  const app = await socketApp(t)
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { hi: Type.Integer() },
    handlers: { hi: (message) => { events.push('hi ' + message.payload); return { action: 'hi', payload: message.payload } } },
    onAuthenticated: async (ctx) => {
      events.push('authenticated')
      ctx.send({ action: 'welcome', payload: null })
      await sleep(100)
      events.push('ready')
    }
  }))
  const client = await openReal(await listenUrl(app, '/ws'))
  for (let i = 0; i < 5; i++) client.send({ action: 'hi', payload: i })
  t.same(await client.take(7), [
    AUTH_OK,
    '{"action":"welcome","payload":null}',
    ...[0, 1, 2, 3, 4].map((i) => `{"action":"hi","payload":${i}}`)
  ])
  t.same(events, ['authenticated', 'ready', 'hi 0', 'hi 1', 'hi 2', 'hi 3', 'hi 4'])
})

test('a failing onAuthenticated is logged and closes the socket with 1011', async (t) => {
  const log = logCapture()
  const app = await socketApp(t, { server: { logger: { level: 'error', stream: log.stream } } })
  app.route(defineSocketRoute({
    url: '/ws',
    messages: {},
    handlers: {},
    onAuthenticated: async () => { throw new Error('no groups today') }
  }))
  await app.ready()
  const client = await open(app, '/ws')
  t.equal(await client.next(), AUTH_OK)
  t.equal(await client.closed(), 1011)
  t.ok(log.lines.some((l) => l.msg === 'fastify-chanx: onAuthenticated failed; closing the socket'))
})

test('onClose gets the context and the close code, once', async (t) => {
  const closes: Array<[unknown, number]> = []
  const app = await socketApp(t)
  let resolveClosed: () => void
  const closed = new Promise<void>((resolve) => { resolveClosed = resolve })
  app.route(defineSocketRoute({
    url: '/ws/:name',
    messages: {},
    handlers: {},
    onClose: (ctx, code) => { closes.push([ctx.params.name, code]); resolveClosed() }
  }))
  const client = await openReal(await listenUrl(app, '/ws/alice'))
  await client.next()
  client.socket.close(4321)
  await closed
  t.same(closes, [['alice', 4321]])
})

test('frames queued behind a slow handler are dropped once the socket closes', async (t) => {
  const { url, log } = await buildApp(t)
  const client = await openReal(url)
  await client.next()
  client.send({ action: 'work', payload: { id: 1, ms: 100 } })
  client.send({ action: 'work', payload: { id: 2, ms: 0 } })
  await sleep(20)
  client.socket.close(1000)
  await client.closed()
  await sleep(150)
  t.same(log, ['start 1', 'end 1'])
})
