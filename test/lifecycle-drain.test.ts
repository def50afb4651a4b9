import { test } from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { defineSocketRoute } from '../plugin'
import { defaultPolicy } from '../plugin/client/policy'
import { AUTH_OK, listenUrl, openReal, type RawClient } from './helpers/router-client'
import { buildApp, type Teardown } from './helpers/handshake'

/** `work` waits `payload` ms (forever for -1), then answers done. */
async function drainApp (t: Teardown, chanx: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, url: string, started: () => number }> {
  const app = await buildApp({ teardown () {} }, { auth: false, chanx: { rateLimit: false, ...chanx } })
  let releaseHung = (): void => {}
  const hung = new Promise<void>((resolve) => { releaseHung = resolve })
  let started = 0
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { work: Type.Integer() },
    handlers: {
      work: async (message) => {
        started++
        if (message.payload < 0) await hung
        else await new Promise((resolve) => setTimeout(resolve, message.payload))
        return { action: 'done', payload: message.payload }
      }
    }
  }))
  t.teardown(async () => { releaseHung(); await app.close() })
  return { app, url: await listenUrl(app, '/ws'), started: () => started }
}

function closeOf (client: RawClient): Promise<[number, string]> {
  return new Promise((resolve) => client.socket.once('close', (code, reason) => resolve([code, reason.toString()])))
}

async function until (condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

test('app.close() drains: a handler in flight finishes and its reply arrives before the 1012 "Server restarting"', async (t) => {
  const { app, url, started } = await drainApp(t)
  const busy = await openReal(url)
  const idle = await openReal(url)
  t.equal(await busy.next(), AUTH_OK)
  t.equal(await idle.next(), AUTH_OK)
  const busyClosed = closeOf(busy)
  const idleClosed = closeOf(idle)
  busy.send({ action: 'work', payload: 400 })
  await until(() => started() === 1)
  const closing = app.close()

  // During the drain a new handshake is refused, with a code that says "come back" (4503).
  const late = await openReal(url)
  t.equal(await late.next(), '{"action":"authentication","payload":{"status_code":503,"status_text":"Service Unavailable","data":{"detail":"Server shutting down"}}}')
  t.equal(await late.closed(), 4503)

  t.equal(await busy.next(3000), '{"action":"done","payload":400}', 'the in-flight reply is delivered')
  t.same(await busyClosed, [1012, 'Server restarting'], 'then the socket is told to come back elsewhere')
  t.same(await idleClosed, [1012, 'Server restarting'], 'an idle socket too (not 1005)')
  t.same(busy.received.slice(-1), ['{"action":"done","payload":400}'], 'nothing after the reply but the close')
  await closing
})

test('a handler that outlives closeGracePeriod does not hold app.close() forever', async (t) => {
  const { app, url } = await drainApp(t, { closeGracePeriod: 300 })
  const client = await openReal(url)
  t.equal(await client.next(), AUTH_OK)
  const closed = closeOf(client)
  client.send({ action: 'work', payload: -1 })
  await new Promise((resolve) => setTimeout(resolve, 50))
  const begun = Date.now()
  await app.close()
  const took = Date.now() - begun
  t.same(await closed, [1012, 'Server restarting'])
  t.ok(took >= 250 && took < 4000, `app.close() waited about the grace period (${took} ms), not for the hung handler`)
})

test('closeGracePeriod is checked at registration', async (t) => {
  await t.rejects(buildApp(t, { auth: false, chanx: { closeGracePeriod: -5 } }), { code: 'FST_CHANX_INVALID_OPTION', message: /option closeGracePeriod must be a whole number of milliseconds/ })
  await t.rejects(buildApp(t, { auth: false, chanx: { closeGracePeriod: '5s' as never } }), { code: 'FST_CHANX_INVALID_OPTION' })
})

test('the fastify-chanx client reconnects after a 1012 (its policy: reconnect with backoff)', async (t) => {
  const decision = defaultPolicy({ code: 1012, reason: 'Server restarting', refusal: null, wasOpen: true, attempt: 0, canRefresh: false, afterRefresh: false } as never)
  t.equal(decision.action, 'reconnect')
})
