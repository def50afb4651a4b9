// Type tests of typed broadcasts and the typed userKey: each `@ts-expect-error` demands that the line after
// it does not compile, each `expectType<Equal<...>>` that inference holds. This program declares
// ChanxTypes { user: User | null, obj: Room | null } with User { id: number, name: string, active: boolean }
// (types/index.test-d.ts).
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import { Type as T1 } from 'typebox'
import chanx, { IsAuthenticated, defineSocketRoute, type BroadcastMessage, type GroupOutcome, type PublishOutcome } from 'fastify-chanx'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
function expectType<T extends true> (): T | void {}
/** Each assignable to the other (the route's messages are intersections, which `Equal` tells apart). */
type Same<A, B> = [A] extends [B] ? [B] extends [A] ? true : false : false

export async function check (): Promise<void> {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, {
    // Typed from the declared user, never called for an anonymous one: `user.name` compiles.
    userKey: (user) => {
      expectType<Equal<typeof user, { id: number, name: string, active: boolean }>>()
      return user.name
    }
  })

  await app.register(chanx, {
    // @ts-expect-error the declared user has no `email`
    userKey: (user) => user.email
  })

  const chatRoute = defineSocketRoute({
    url: '/ws/rooms/:roomId',
    permissions: [IsAuthenticated],
    messages: { chat: Type.Object({ text: Type.String() }) },
    outgoing: { chat: Type.Object({ text: Type.String(), from: Type.String() }), moved: T1.Object({ x: T1.Integer() }) },
    validateOutgoing: true,
    handlers: {
      chat: async (message, ctx) => {
        await ctx.broadcast({ action: 'chat', payload: { text: message.payload.text, from: ctx.user.name } })
        await ctx.broadcast({ action: 'moved', payload: { x: 1 } }, { groups: 'room:a', excludeSelf: false })
        // @ts-expect-error an action `outgoing` does not declare
        await ctx.broadcast({ action: 'undeclared', payload: 1 })
        // @ts-expect-error a payload that does not match the action's outgoing schema
        await ctx.broadcast({ action: 'chat', payload: { text: 1, from: 'me' } })
        // @ts-expect-error a payload of another action's shape
        await ctx.broadcast({ action: 'moved', payload: { text: 'x', from: 'me' } })
      }
    }
  })
  app.route(chatRoute)

  // app.chanx.broadcast, typed by a route.
  expectType<Same<BroadcastMessage<typeof chatRoute>,
    { action: 'chat', payload: { text: string, from: string } } | { action: 'moved', payload: { x: number } }>>()
  await app.chanx.broadcast<typeof chatRoute>('room:a', { action: 'chat', payload: { text: 'hi', from: 'server' } })
  await app.chanx.broadcast<typeof chatRoute>(['room:a', 'room:b'], { action: 'moved', payload: { x: 2 } })
  // @ts-expect-error an action the route's `outgoing` does not declare
  await app.chanx.broadcast<typeof chatRoute>('room:a', { action: 'undeclared', payload: 1 })
  // @ts-expect-error a payload that does not match
  await app.chanx.broadcast<typeof chatRoute>('room:a', { action: 'moved', payload: { x: 'two' } })
  // @ts-expect-error a type that is not a route made by defineSocketRoute
  await app.chanx.broadcast<{ url: string }>('room:a', { action: 'chat', payload: null })
  // Without a route: any object, as before.
  await app.chanx.broadcast('room:a', { anything: true })
}

// What a rejected publish says (docs/broadcast.md): `err.outcome`, and `err.groups` per group.
expectType<Equal<PublishOutcome, 'not_sent' | 'unknown'>>()
expectType<Equal<GroupOutcome, 'published' | 'not_sent' | 'unknown'>>()
