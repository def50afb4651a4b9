// Type tests of the message router: each `expectType<Equal<...>>` fails compilation when inference breaks,
// and each `@ts-expect-error` demands that the line after it does not compile. This program declares
// ChanxTypes { user: User | null, obj: Room | null } (types/index.test-d.ts).
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type, type Static } from '@sinclair/typebox'
import chanx, {
  defineSocketRoute,
  type ChanxMessage,
  type ChanxObject,
  type ChanxUser,
  type RouteParams,
  type SocketContext
} from 'fastify-chanx'
import type { WebSocket } from 'ws'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
function expectType<T extends true> (): T | void {}

interface Board { id: string, cells: number[] }
const boards = new Map<string, Board>()

const Chat = Type.Object({ text: Type.String(), to: Type.Optional(Type.Integer()) })
const Move = Type.Object({ x: Type.Integer(), y: Type.Integer() })
const ChatOut = Type.Object({ text: Type.String(), from: Type.String() })

expectType<Equal<RouteParams<'/ws/boards/:boardId/players/:player'>, { boardId: string, player: string }>>()
expectType<Equal<RouteParams<'/ws/:id(^\\d+)'>, { id: string }>>()
expectType<Equal<RouteParams<'/ws'>, {}>>()

const app = Fastify()
void app.register(websocket)
void app.register(chanx)

// Messages, params, the loaded object, the user and outgoing messages are all inferred.
app.route(defineSocketRoute({
  url: '/ws/boards/:boardId',
  objectLoader: async (request) => {
    expectType<Equal<typeof request.params, { boardId: string }>>()
    return boards.get(request.params.boardId)
  },
  messages: { chat: Chat, move: Move },
  outgoing: { chat: ChatOut, moved: Move },
  validateOutgoing: true,
  sendCompletion: true,
  concurrency: 1,
  handlers: {
    chat: (message, ctx) => {
      expectType<Equal<typeof message.action, 'chat'>>()
      expectType<Equal<typeof message.payload, Static<typeof Chat>>>()
      expectType<Equal<typeof message.payload.to, number | undefined>>()
      expectType<Equal<typeof ctx.obj, Board>>()
      expectType<Equal<typeof ctx.user, ChanxUser>>()
      expectType<Equal<typeof ctx.params, { boardId: string }>>()
      expectType<Equal<typeof ctx.request.params, { boardId: string }>>()
      expectType<Equal<typeof ctx.socket, WebSocket>>()
      ctx.send({ action: 'moved', payload: { x: 1, y: 2 } })
      // @ts-expect-error an outgoing payload must match its schema
      ctx.send({ action: 'moved', payload: { x: 'one', y: 2 } })
      // @ts-expect-error only declared outgoing actions
      ctx.send({ action: 'nope', payload: null })
      ctx.close(4000, 'bye')
      return { action: 'chat', payload: { text: message.payload.text, from: ctx.obj.id } }
    },
    move: async (message) => {
      expectType<Equal<typeof message.payload, { x: number, y: number }>>()
      return undefined
    }
  },
  onAuthenticated: (ctx) => {
    expectType<Equal<typeof ctx.obj, Board>>()
  },
  onClose: async (ctx, code) => {
    expectType<Equal<typeof code, number>>()
    expectType<Equal<typeof ctx.params.boardId, string>>()
  }
}))

// Without a loader the object is the declared ChanxTypes['obj']; without outgoing schemas any message goes.
app.route(defineSocketRoute({
  url: '/ws',
  messages: { hello: Type.Null() },
  handlers: {
    hello: (message, ctx) => {
      expectType<Equal<typeof message.payload, null>>()
      expectType<Equal<typeof ctx.obj, ChanxObject>>()
      expectType<Equal<typeof ctx, SocketContext<ChanxUser, ChanxObject, {}, ChanxMessage>>>()
      ctx.send({ action: 'anything', payload: [1, 2, 3] })
      return { action: 'hello', payload: 'world' }
    }
  }
}))

// A synchronous loader, and a renamed action key.
app.route(defineSocketRoute({
  url: '/ws/boards/:boardId/sync',
  objectLoader: (request) => boards.get(request.params.boardId) ?? null,
  actionKey: 'type',
  messages: { chat: Chat },
  outgoing: { said: ChatOut },
  handlers: {
    chat: (message, ctx) => {
      expectType<Equal<typeof message.type, 'chat'>>()
      expectType<Equal<typeof ctx.obj, Board>>()
      return { type: 'said', payload: { text: message.payload.text, from: 'me' } }
    }
  }
}))

app.route(defineSocketRoute({
  url: '/ws/bad/return',
  messages: { chat: Chat },
  outgoing: { said: ChatOut },
  handlers: {
    // @ts-expect-error a returned message must be a declared outgoing message
    chat: () => ({ action: 'said', payload: { text: 1 } })
  }
}))

app.route(defineSocketRoute({
  url: '/ws/bad/missing',
  messages: { chat: Chat, move: Move },
  // @ts-expect-error every declared message needs a handler
  handlers: { chat: () => undefined }
}))

app.route(defineSocketRoute({
  url: '/ws/bad/extra',
  messages: { chat: Chat },
  handlers: {
    chat: () => undefined,
    // @ts-expect-error a handler needs a schema
    leave: () => undefined
  }
}))

app.route(defineSocketRoute({
  url: '/ws/bad/payload',
  messages: { chat: Chat },
  handlers: {
    // @ts-expect-error the payload is typed by its schema
    chat: (message) => { const n: number = message.payload.text; n.toFixed() }
  }
}))

// @ts-expect-error options are typed
app.route(defineSocketRoute({ url: '/ws/bad/options', messages: {}, handlers: {}, concurrency: 'many' }))

// The same options on a plain route are accepted, typed loosely.
app.get('/ws/plain', {
  websocket: true,
  messages: { hi: Chat },
  sendCompletion: true,
  handlers: {
    hi: (message, ctx) => {
      expectType<Equal<typeof message, ChanxMessage>>()
      expectType<Equal<typeof ctx.user, ChanxUser>>()
      return undefined
    }
  }
}, () => {})

// Channel events: each handler's payload is typed by its schema; groups(ctx) sees the loaded object.
app.route(defineSocketRoute({
  url: '/ws/events/:roomId',
  objectLoader: async (request) => ({ id: request.params.roomId, topic: 'x' }),
  groups: (ctx) => {
    expectType<Equal<typeof ctx.obj, { id: string, topic: string }>>()
    expectType<Equal<typeof ctx.params, { roomId: string }>>()
    return [`room:${ctx.obj.id}`]
  },
  messages: { chat: Chat },
  events: { announce: Type.Object({ text: Type.String(), level: Type.Integer() }) },
  eventHandlers: {
    announce: (payload, ctx) => {
      expectType<Equal<typeof payload, { text: string, level: number }>>()
      void ctx.broadcast({ action: 'announce', payload })
      return undefined
    }
  },
  handlers: {
    chat: async (message, ctx) => {
      await ctx.broadcast({ action: 'chat', payload: message.payload }, { excludeSelf: false })
      await ctx.join(`topic:${ctx.obj.topic}`)
      expectType<Equal<typeof ctx.groups, readonly string[]>>()
    }
  }
}))

app.route(defineSocketRoute({
  url: '/ws/events/bad',
  messages: {},
  handlers: {},
  events: { announce: Type.Object({ text: Type.String() }) },
  eventHandlers: {
    // @ts-expect-error an event payload is typed by its schema
    announce: (payload) => { const n: number = payload.text; n.toFixed() }
  }
}))
