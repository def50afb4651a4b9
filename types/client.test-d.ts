// Type tests of fastify-chanx/client: the client is typed from `typeof route` alone (a type-only import in
// an app), so each `expectType<Equal<...>>` and `@ts-expect-error` below fails when that inference breaks.
import { Type } from '@sinclair/typebox'
import { Type as T1 } from 'typebox'
import { WebSocket as WsWebSocket } from 'ws'
import { defineSocketRoute } from 'fastify-chanx'
import { createClient, type ChanxRefusal, type Decision, type CloseInfo, type RecoveryInfo } from 'fastify-chanx/client'

type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends (<X>() => X extends B ? 1 : 2) ? true : false
function expectType<V extends true> (): V | void {}

export const chatRoute = defineSocketRoute({
  url: '/ws/rooms/:roomId',
  messages: {
    chat: Type.Object({ text: Type.String() }),
    history: Type.Object({ limit: Type.Integer() }),
    leave: Type.Null()
  },
  outgoing: {
    chat: Type.Object({ text: Type.String(), from: Type.String() }),
    history: Type.Array(Type.String())
  },
  handlers: {
    chat: (message) => ({ action: 'chat', payload: { text: message.payload.text, from: 'me' } }),
    history: () => ({ action: 'history', payload: [] }),
    leave: () => undefined
  }
})

const client = createClient<typeof chatRoute>('ws://localhost/ws/rooms/lobby')

client.send('chat', { text: 'hi' })
client.send('leave', null)
// @ts-expect-error the payload is checked against the incoming schema
client.send('chat', { text: 5 })
// @ts-expect-error an action the route does not declare
client.send('shout', { text: 'hi' })
// @ts-expect-error a missing field
client.send('history', {})

client.on('message:chat', (message) => {
  expectType<Equal<typeof message.payload, { text: string, from: string }>>()
  expectType<Equal<typeof message.action, 'chat'>>()
})
client.on('message:history', (message) => {
  expectType<Equal<typeof message.payload, string[]>>()
})
client.on('message:error', (message) => {
  expectType<Equal<typeof message.payload, unknown>>()
})
// @ts-expect-error the route sends no such message
client.on('message:shout', () => {})
client.on('message', (message) => {
  if (message.action === 'chat') expectType<Equal<typeof message.payload, { text: string, from: string }>>()
  expectType<Equal<typeof message.is_mine, boolean | undefined>>()
})
client.on('refused', (refusal) => {
  expectType<Equal<typeof refusal, ChanxRefusal>>()
  expectType<Equal<typeof refusal.closeCode, number>>()
})
client.on('open', (info) => {
  expectType<Equal<typeof info.recovery, RecoveryInfo | undefined>>()
  if (info.recovery !== undefined) expectType<Equal<typeof info.recovery.reason, string | null>>()
})
expectType<Equal<typeof client.recovered, boolean | null>>()
client.on('reconnecting', (info) => expectType<Equal<typeof info, { attempt: number, delay: number, code: number, reason: string }>>())

async function replies () {
  const reply = await client.request('history', { limit: 10 })
  if (reply.action === 'history') expectType<Equal<typeof reply.payload, string[]>>()
  // @ts-expect-error request checks the payload too
  await client.request('history', { limit: 'ten' })
}
void replies

// A typebox 1.x route and a custom action key.
export const v1Route = defineSocketRoute({
  url: '/ws/v1',
  actionKey: 'type',
  messages: { move: T1.Object({ x: T1.Integer() }) },
  handlers: { move: (message) => ({ type: 'move', payload: message.payload }) }
})
const v1 = createClient<typeof v1Route>('ws://localhost/ws/v1', { actionKey: 'type' })
v1.send('move', { x: 1 })
// @ts-expect-error x is an integer
v1.send('move', { x: '1' })
// @ts-expect-error the action key is the route's
createClient<typeof v1Route>('ws://localhost/ws/v1', { actionKey: 'action' })

// Without a route type every message is loose.
const loose = createClient('ws://localhost/ws')
loose.send('anything', { at: 'all' })
loose.on('message:whatever', (message) => expectType<Equal<typeof message.payload, unknown>>())

// A policy is a function of the close.
const policy = (close: CloseInfo): Decision => close.code === 4429 ? { action: 'stop' } : { action: 'reconnect', delay: 100 }
createClient<typeof chatRoute>('ws://localhost/ws/rooms/lobby', { policy })

// ws's WebSocket is a WebSocket implementation the client takes.
createClient<typeof chatRoute>('ws://localhost/ws/rooms/lobby', { WebSocket: WsWebSocket })
