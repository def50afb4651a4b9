import { Type } from '@sinclair/typebox'
import { Type as T1 } from 'typebox'
import { defineSocketRoute } from 'fastify-chanx'

/** Both TypeBox lines, typed broadcasts, replies checked against `outgoing`. */
export const chatRoute = defineSocketRoute({
  url: '/ws/rooms/:roomId',
  messages: {
    chat: Type.Object({ text: Type.String() }),
    move: T1.Object({ x: T1.Integer() }),
    shout: Type.Object({ text: Type.String() })
  },
  outgoing: {
    chat: Type.Object({ text: Type.String(), from: Type.String() }),
    moved: T1.Object({ x: T1.Integer() }),
    notice: Type.Object({ text: Type.String() })
  },
  validateOutgoing: true,
  sendCompletion: true,
  groups: (ctx) => [`room:${(ctx.params as { roomId: string }).roomId}`],
  handlers: {
    chat: async (message, ctx) => {
      await ctx.broadcast({ action: 'chat', payload: { text: message.payload.text, from: ctx.user?.name ?? 'nobody' } })
    },
    move: (message) => ({ action: 'moved', payload: { x: message.payload.x } }),
    // A broadcast that breaks `outgoing` at run time (the types are told otherwise): refused, not delivered.
    shout: async (message, ctx) => {
      await ctx.broadcast({ action: 'notice', payload: { text: Number(message.payload.text) as unknown as string } })
    }
  }
})

/** Refuses with the HTTP status instead of an authentication message. */
export const refusingRoute = defineSocketRoute({
  url: '/ws/strict',
  rejectUpgrade: true,
  messages: {},
  handlers: {}
})
