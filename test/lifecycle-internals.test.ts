import { test } from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx, { ChannelHub, type ChannelLayer } from '../plugin'
import { carriesUpgradeSymbols, checkWebsocketServer } from '../plugin/core/ws-internals'
import { closeApp, connect } from '../plugin/testing'

function timeouts (): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
}

test('the installed @fastify/websocket stores the upgrade socket and head under the symbols fastify-chanx reads', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx)
  const seen: boolean[] = []
  app.get('/ws', {
    websocket: true,
    preHandler: async (request) => { seen.push(carriesUpgradeSymbols(request.raw)) }
  }, () => {})
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => closeApp(app))
  const { port } = app.server.address() as AddressInfo

  const real = await new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
    ws.once('message', () => resolve(ws))
    ws.once('error', reject)
  })
  real.terminate()
  const injected = await connect(app, '/ws')
  await injected.authentication()
  t.same(seen, [true, true], 'found on a real upgrade and on injectWS')
})

test('a websocketServer of another shape fails registration with a sentence naming it', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  Object.freeze(app.websocketServer.options)
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(chanx) }, { code: 'FST_CHANX_DEPENDENCY_CHANGED', message: /ws .* no longer behaves .*app.websocketServer does not have the shape of a ws 8 WebSocketServer/ })
  t.throws(() => checkWebsocketServer({ options: {} } as never), /handleUpgrade/)
})

test('a pending groupSize does not hold the process open (its timer is unref\'d)', async (t) => {
  // Two processes receive the query; none answers.
  const layer: ChannelLayer = {
    name: 'silent',
    setListener () {},
    subscribe: async () => {},
    unsubscribe: async () => {},
    publish: async () => 2,
    close: async () => {}
  }
  const hub = new ChannelHub({ layer, sizeTimeout: 60_000 })
  const before = timeouts()
  const size = hub.size('room')
  size.catch(() => {})
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(timeouts(), before, 'no timer keeps the event loop alive')
  await hub.close()
  await t.rejects(size, { code: 'FST_CHANX_CHANNEL_LAYER_CLOSED' })
})
