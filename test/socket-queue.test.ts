import { test } from 'tap'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { Type } from '@sinclair/typebox'
import WebSocket from 'ws'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import chanx, { defineSocketRoute } from '../plugin'
import type { Context } from '../plugin/messages/context'
import type { RouterConnection } from '../plugin/messages/dispatch'
import { AUTH_OK, listenUrl, openReal, socketApp, type Teardown } from './helpers/router-client'

/** The frame queue of the socket a handler runs for (a test-visible accessor; not part of the handlers' type). */
function queueOf (ctx: unknown): RouterConnection['queue'] {
  return ((ctx as Context).connection as RouterConnection).queue
}

test('a client that always keeps 2-3 frames queued behind a slow handler reuses the same slots (100,000 frames)', async (t) => {
  const app = await socketApp(t)
  let maxCapacity = 0
  let maxWaiting = 0
  let handled = 0
  app.route(defineSocketRoute({
    url: '/ws',
    rateLimit: false,
    messages: { work: Type.Integer() },
    handlers: {
      work: async (message, ctx) => {
        const queue = queueOf(ctx)
        if (queue.capacity > maxCapacity) maxCapacity = queue.capacity
        if (queue.length > maxWaiting) maxWaiting = queue.length
        handled++
        await nextTurn()
        return { action: 'done', payload: message.payload }
      }
    }
  }))
  const url = await listenUrl(app, '/ws')
  const TOTAL = 100_000
  const WINDOW = 5
  const socket = new WebSocket(url)
  t.teardown(() => socket.terminate())
  const started = Date.now()
  const last = await new Promise<number>((resolve, reject) => {
    let sent = 0
    let received = 0
    socket.on('error', reject)
    socket.on('close', (code) => reject(new Error(`closed with ${code} after ${received} replies`)))
    socket.on('message', (data) => {
      const text = data.toString()
      if (text === AUTH_OK) {
        for (; sent < WINDOW; sent++) socket.send(`{"action":"work","payload":${sent}}`)
        return
      }
      received++
      if (sent < TOTAL) socket.send(`{"action":"work","payload":${sent++}}`)
      if (received === TOTAL) resolve((JSON.parse(text) as { payload: number }).payload)
    })
  })
  t.equal(last, TOTAL - 1, 'every frame was handled, in order')
  t.equal(handled, TOTAL)
  t.ok(maxWaiting >= 2, `the client kept a backlog (up to ${maxWaiting} frames waited)`)
  t.ok(maxCapacity <= 8, `the queue's storage stayed at ${maxCapacity} slots over ${TOTAL} frames in ${Date.now() - started} ms`)
})

/** A route whose handler never settles until the test ends; the frames of 60 KiB after the first wait in the queue. */
async function stuckRoute (t: Teardown, options: { chanx?: Record<string, unknown>, route?: Record<string, unknown> } = {}): Promise<{ url: string, calls: () => number }> {
  const app = await socketApp(t, { chanx: { rateLimit: false, ...options.chanx } })
  let release = (): void => {}
  const stuck = new Promise<void>((resolve) => { release = resolve })
  t.teardown(() => release())
  let calls = 0
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { work: Type.String() },
    handlers: { work: async () => { calls++; await stuck } },
    ...options.route
  }))
  return { url: await listenUrl(app, '/ws'), calls: () => calls }
}

const FRAME_60K = JSON.stringify({ action: 'work', payload: 'x'.repeat(60 * 1024) })

test('frames waiting for a stuck handler are bounded in bytes: past maxQueuedBytes (1 MiB by default) the socket closes with 1008', async (t) => {
  const { url, calls } = await stuckRoute(t)
  const client = await openReal(url)
  t.teardown(() => client.socket.terminate())
  t.equal(await client.next(), AUTH_OK)
  // One in flight; 17 frames of 60 KiB (about 1,020 KiB) fit in 1 MiB, the 18th does not, well before maxQueuedFrames (100).
  for (let i = 0; i < 30; i++) client.send(FRAME_60K)
  const closed = new Promise<[number, string]>((resolve) => client.socket.once('close', (code, reason) => resolve([code, reason.toString()])))
  t.same(await closed, [1008, 'Too many pending message bytes'])
  t.equal(calls(), 1, 'only the first frame reached its handler')
})

test('maxQueuedBytes is a route option too, and 0 lifts the byte cap (maxQueuedFrames still holds)', async (t) => {
  const small = await stuckRoute(t, { route: { maxQueuedBytes: 2 * 61 * 1024 } })
  const first = await openReal(small.url)
  t.teardown(() => first.socket.terminate())
  t.equal(await first.next(), AUTH_OK)
  for (let i = 0; i < 4; i++) first.send(FRAME_60K)
  t.equal(await first.closed(5000), 1008, 'the fourth frame (third waiting) passes the route\'s 122 KiB')

  const uncapped = await stuckRoute(t, { chanx: { maxQueuedBytes: 0 }, route: { maxQueuedFrames: 40 } })
  const second = await openReal(uncapped.url)
  t.teardown(() => second.socket.terminate())
  t.equal(await second.next(), AUTH_OK)
  const closed = new Promise<[number, string]>((resolve) => second.socket.once('close', (code, reason) => resolve([code, reason.toString()])))
  for (let i = 0; i < 42; i++) second.send(FRAME_60K)
  t.same(await closed, [1008, 'Too many pending messages'], '2.4 MiB waited; the 41st waiting frame hit maxQueuedFrames')
})

test('maxQueuedBytes is checked at registration, on the plugin and on a route', async (t) => {
  const app = await socketApp(t)
  t.throws(() => app.route(defineSocketRoute({
    url: '/ws',
    maxQueuedBytes: 1.5,
    messages: { work: Type.String() },
    handlers: { work: () => {} }
  })), { code: 'FST_CHANX_INVALID_OPTION', message: /route GET \/ws: maxQueuedBytes must be a whole number/ })
  const other = Fastify()
  await other.register(websocket)
  t.teardown(() => other.close())
  await t.rejects(async () => { await other.register(chanx, { maxQueuedBytes: -1 }) }, { code: 'FST_CHANX_INVALID_OPTION', message: /option maxQueuedBytes must be a whole number/ })
})
