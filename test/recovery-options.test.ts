import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type WebSocket from 'ws'
import websocket from '@fastify/websocket'
import chanx, { type FastifyChanxOptions } from '../plugin'
import { MemoryLayer } from '../plugin/channels/memory-layer'
import { closeApp } from '../plugin/testing'
import { pluginRegistrationError } from './helpers/registration'

/** The history options fail closed, and history off leaves every frame as it was. */

test('option history must be true, false or { size, maxAge } with sane values', async (t) => {
  const cases: Array<[unknown, string]> = [
    ['yes', 'option history must be true, false or { size, maxAge, metaTtl }'],
    [{ sise: 10 }, 'option history has an unknown key "sise"; expected size, maxAge, metaTtl'],
    [{ maxAge: 5000, metaTtl: 4999 }, 'option history.metaTtl must be a whole number of milliseconds, at least maxAge (5000) and at most a year'],
    [{ metaTtl: '1d' }, 'option history.metaTtl must be a whole number of milliseconds, at least maxAge (120000) and at most a year'],
    [{ size: 0 }, 'option history.size must be a whole number of messages from 1 to 1000000'],
    [{ size: 2.5 }, 'option history.size must be a whole number of messages from 1 to 1000000'],
    [{ maxAge: 120 }, 'option history.maxAge must be a whole number of milliseconds, at least 1000'],
    [{ maxAge: '120s' }, 'option history.maxAge must be a whole number of milliseconds, at least 1000']
  ]
  for (const [value, message] of cases) {
    const err = await pluginRegistrationError({ history: value })
    t.equal(err.code, 'FST_CHANX_INVALID_OPTION', JSON.stringify(value))
    t.equal(err.message, `fastify-chanx: ${message}`)
  }
  const near = await pluginRegistrationError({ histroy: true })
  t.match(near.message, /did you mean "history"/)
})

async function routeError (route: Record<string, unknown>, options: FastifyChanxOptions = {}): Promise<Error & { code?: string }> {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, options)
  try {
    app.get('/ws', { websocket: true, groups: () => ['lobby'], ...route }, () => {})
    await app.ready()
  } catch (err) {
    return err as Error & { code?: string }
  } finally {
    await app.close()
  }
  throw new Error('registered')
}

test('a route\'s history is a boolean, needs the authentication message, and a layer that can keep it', async (t) => {
  let err = await routeError({ history: 'on' })
  t.equal(err.code, 'FST_CHANX_INVALID_OPTION')
  t.equal(err.message, 'fastify-chanx: route GET /ws: history must be a boolean')
  err = await routeError({ history: true, sendAuthenticationMessage: false })
  t.equal(err.message, 'fastify-chanx: route GET /ws: history needs sendAuthenticationMessage: the authentication message carries the recovery token and positions')
  err = await routeError({ histroy: true })
  t.match(err.message, /did you mean "history"/)
  const layer = new MemoryLayer()
  Object.defineProperty(layer, 'name', { value: 'custom' })
  const custom = { name: 'custom', subscribe: layer.subscribe.bind(layer), unsubscribe: layer.unsubscribe.bind(layer), publish: layer.publish.bind(layer), setListener: layer.setListener.bind(layer), close: layer.close.bind(layer) }
  err = await pluginRegistrationError({ channelLayer: custom, history: true })
  t.equal(err.message, 'fastify-chanx: option history needs the in-process channel layer or redis; the channel layer "custom" cannot keep it')
})

/** A socket whose frames are kept as the bytes that came. */
async function connect (app: FastifyInstance, path: string) {
  const frames: string[] = []
  const waiters: Array<(frame: string) => void> = []
  await app.injectWS(path, {}, {
    onInit: (ws: WebSocket) => ws.on('message', (data: Buffer) => {
      const waiter = waiters.shift()
      if (waiter === undefined) frames.push(String(data))
      else waiter(String(data))
    })
  })
  return {
    receiveRaw: (): Promise<string> => frames.length > 0 ? Promise.resolve(frames.shift()!) : new Promise((resolve) => waiters.push(resolve))
  }
}

async function app (options: FastifyChanxOptions, route: Record<string, unknown> = {}) {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, options)
  app.get('/ws', { websocket: true, groups: () => ['lobby'], ...route }, () => {})
  await app.ready()
  return app
}

test('history off (the default): the authentication message and broadcast copies are exactly as before', async (t) => {
  const off = await app({})
  t.teardown(() => closeApp(off))
  const client = await connect(off, '/ws')
  t.equal(await client.receiveRaw(), '{"action":"authentication","payload":{"status_code":200,"status_text":"OK","data":{"detail":"OK"}}}')
  await off.chanx.broadcast('lobby', { action: 'news', payload: 1 })
  t.equal(await client.receiveRaw(), '{"action":"news","payload":1,"is_mine":false,"is_current":false}')
})

test('a route enables history alone; another route opts out of it', async (t) => {
  const on = await app({}, { history: true })
  t.teardown(() => closeApp(on))
  const client = await connect(on, '/ws')
  t.match(JSON.parse(await client.receiveRaw()), { action: 'authentication', chanx_recovery: { token: String, positions: { lobby: [0, String] } } })
  await on.chanx.broadcast('lobby', { action: 'news', payload: 1 })
  t.match(await client.receiveRaw(), /^\{"action":"news","payload":1,"chanx_pos":\{"lobby":\[1,"[0-9a-f]{12}"\]\},"is_mine":false,"is_current":false\}$/)

  const out = await app({ history: { size: 10, maxAge: 5000 } }, { history: false })
  t.teardown(() => closeApp(out))
  const plain = await connect(out, '/ws')
  t.equal(JSON.parse(await plain.receiveRaw()).chanx_recovery, undefined, 'no recovery on the route that opted out')
})
