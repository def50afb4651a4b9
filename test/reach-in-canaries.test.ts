import { test } from 'tap'
import type { IncomingMessage } from 'node:http'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import Redis from 'ioredis'
import WebSocket, { WebSocketServer, type ServerOptions } from 'ws'
import chanx, { defineSocketRoute } from '../plugin'
import { checkWs } from '../plugin/core/ws-canary-internals'
import { checkSlotRefreshThrottled, throttleSlotRefresh } from '../plugin/channels/redis/ioredis-internals'
import { closeApp, connect } from '../plugin/testing'

// Each reach-in's canary (core/ws-internals.ts, channels/redis/ioredis-internals.ts) against a library that
// behaves otherwise: ws's own classes, changed the way a future release could change them.

const wsVersion = (require('ws/package.json') as { version: string }).version

/** A ws server that copies its options at construction, as a future ws could: later changes never reach an upgrade. */
class CopyingServer extends WebSocketServer {
  constructor (options: ServerOptions) {
    super(options)
    const copied = { ...this.options }
    Object.defineProperty(this, 'options', { value: { ...copied }, writable: true, enumerable: true })
    const handleUpgrade = this.handleUpgrade
    this.handleUpgrade = function (this: WebSocketServer, req: IncomingMessage, ...rest: [never, never, never]) {
      const current = this.options
      this.options = { ...copied }
      try {
        return handleUpgrade.call(this, req, ...rest)
      } finally {
        this.options = current
      }
    } as WebSocketServer['handleUpgrade']
  }
}

/** A ws socket that holds every send for a turn of the event loop, as a ws that buffered in a new place would. */
class DeferringSocket extends WebSocket {
  override send (data: unknown, ...rest: unknown[]): void {
    setImmediate(() => (WebSocket.prototype.send as (...args: unknown[]) => void).call(this, data, ...rest))
  }
}

/** A server whose sockets are `DeferringSocket`s, through ws's public `WebSocket` option. */
class DeferringServer extends WebSocketServer {
  constructor (options: ServerOptions) {
    super({ ...options, WebSocket: DeferringSocket })
  }
}

test('the canary passes on the installed ws: options read per upgrade, direct writes in order', async (t) => {
  await t.resolves(checkWs(new WebSocketServer({ noServer: true })))
})

test('a ws that copies its options at construction fails registration, naming ws and its version (no 100 MiB cap, no echoed bearer)', async (t) => {
  const err = await checkWs(new CopyingServer({ noServer: true })).then(() => null, (error: Error & { code?: string }) => error)
  t.equal(err?.code, 'FST_CHANX_DEPENDENCY_CHANGED')
  t.match(err?.message, `fastify-chanx: ws ${wsVersion} no longer behaves as fastify-chanx relies on: handleProtocols`)
})

test('a ws whose sends are buffered where the direct path cannot see fails registration (no frames out of order)', async (t) => {
  const err = await checkWs(new DeferringServer({ noServer: true })).then(() => null, (error: Error & { code?: string }) => error)
  t.equal(err?.code, 'FST_CHANX_DEPENDENCY_CHANGED')
  t.match(err?.message, /would not keep their order among ws's own sends .*on the wire: a c x g b/)
})

test('ioredis: a client without refreshSlotsCache, or one that connected around the throttle, is refused naming ioredis', async (t) => {
  const version = (require('ioredis/package.json') as { version: string }).version
  const client = new Redis({ lazyConnect: true })
  t.teardown(() => client.disconnect())
  t.throws(() => throttleSlotRefresh(client), { code: 'FST_CHANX_DEPENDENCY_CHANGED', message: new RegExp(`ioredis ${version.replace(/\./g, '\\.')} .*no refreshSlotsCache`) })
  t.throws(() => checkSlotRefreshThrottled(client), { code: 'FST_CHANX_DEPENDENCY_CHANGED', message: /connected without calling its refreshSlotsCache/ })
})

test('validateOutgoing checks broadcasts: one outside `outgoing` rejects with FST_CHANX_OUTGOING_INVALID and reaches nobody', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx)
  const refusals: unknown[] = []
  app.route(defineSocketRoute({
    url: '/ws',
    groups: () => ['room'],
    messages: { say: Type.Object({ text: Type.String(), valid: Type.Boolean() }), fire: Type.Null() },
    outgoing: { said: Type.Object({ text: Type.String() }) },
    validateOutgoing: true,
    sendCompletion: true,
    handlers: {
      say: async (message, ctx) => {
        const broadcast = message.payload.valid
          ? { action: 'said' as const, payload: { text: message.payload.text } }
          : { action: 'said' as const, payload: { text: 5 as unknown as string } }
        await ctx.broadcast(broadcast).catch((err: unknown) => { refusals.push((err as { code?: string }).code) })
      },
      // Not awaited: the refusal must not become an unhandled rejection (which would end this test's process).
      fire: (_message, ctx) => { void ctx.broadcast({ action: 'said', payload: { text: 7 as unknown as string } }) }
    }
  }))
  t.teardown(() => closeApp(app))
  const alice = await connect(app, '/ws')
  const bob = await connect(app, '/ws')
  await alice.authentication()
  await bob.authentication()
  alice.sendAction('say', { text: 'wrong', valid: false })
  await alice.receiveUntil('complete')
  t.same(refusals, ['FST_CHANX_OUTGOING_INVALID'])
  alice.sendAction('fire')
  await alice.receiveUntil('complete')
  await new Promise((resolve) => setImmediate(resolve))
  alice.sendAction('say', { text: 'right', valid: true })
  await alice.receiveUntil('complete')
  t.same(await bob.receive(), { action: 'said', payload: { text: 'right' }, is_mine: false, is_current: false }, 'bob\'s first broadcast is the valid one')
})
