// Type tests of what a user should never have to cast (issue 12.5): each route's object type from its
// objectLoader, a non-null user after IsAuthenticated, payloads from both TypeBox lines. This program
// declares ChanxTypes { user: User | null, obj: Room | null } (types/index.test-d.ts).
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type as T034, type Static as Static034 } from '@sinclair/typebox'
import { Type, type Static } from 'typebox'
import chanx, {
  AllowAny,
  IsAuthenticated,
  defineRoute,
  defineSocketRoute,
  type ChanxObject,
  type ChanxUser,
  type Permission,
  type SchemaStatic
} from 'fastify-chanx'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
function expectType<T extends true> (): T | void {}

interface User { id: number, name: string, active: boolean }
interface Doc { id: string, title: string }
interface Room { id: string, members: number[] }

const docs = new Map<string, Doc>()
const rooms = new Map<string, Room>()

const CanReadDoc: Permission<Doc> = { hasObjectPermission: (_request, doc) => doc.title !== '' }
const IsMember: Permission<Room> = {
  hasObjectPermission: (request, room) => request.user !== null && room.members.includes(request.user.id)
}

// Both TypeBox lines give their own Static.
const V1 = Type.Object({ x: Type.Integer(), tags: Type.Array(Type.String()), note: Type.Optional(Type.String()) })
const V034 = T034.Object({ x: T034.Integer(), tags: T034.Array(T034.String()), note: T034.Optional(T034.String()) })
expectType<Equal<SchemaStatic<typeof V1>, Static<typeof V1>>>()
expectType<Equal<SchemaStatic<typeof V034>, Static034<typeof V034>>>()
expectType<Equal<SchemaStatic<typeof V1>, { x: number, tags: string[], note?: string }>>()
expectType<Equal<SchemaStatic<typeof V034>, { x: number, tags: string[], note?: string }>>()
expectType<Equal<SchemaStatic<typeof T034.Null>, unknown>>()

const app = Fastify()
void app.register(websocket)
void app.register(chanx)

// A socket route: user non-null after IsAuthenticated, object from the loader, payloads of both lines.
app.route(defineSocketRoute({
  url: '/ws/rooms/:roomId',
  permissions: [IsAuthenticated, IsMember],
  objectLoader: (request) => rooms.get(request.params.roomId),
  messages: { v1: V1, v034: V034, none: Type.Null() },
  handlers: {
    v1: (message, ctx) => {
      expectType<Equal<typeof message.payload, { x: number, tags: string[], note?: string }>>()
      expectType<Equal<typeof ctx.user, User>>()
      expectType<Equal<typeof ctx.obj, Room>>()
    },
    v034: (message) => {
      expectType<Equal<typeof message.payload, { x: number, tags: string[], note?: string }>>()
    },
    none: (message) => {
      expectType<Equal<typeof message.payload, null>>()
    }
  },
  onAuthenticated: (ctx) => { expectType<Equal<typeof ctx.user, User>>() },
  groups: (ctx) => {
    expectType<Equal<typeof ctx.user, User>>()
    return [`user:${ctx.user.id}`]
  }
}))

// Without IsAuthenticated the user may be null, as declared.
app.route(defineSocketRoute({
  url: '/ws/open',
  permissions: [AllowAny],
  messages: { hi: Type.Null() },
  handlers: {
    hi: (_message, ctx) => {
      expectType<Equal<typeof ctx.user, User | null>>()
      expectType<Equal<typeof ctx.obj, ChanxObject>>()
    }
  }
}))

app.route(defineSocketRoute({
  url: '/ws/docs/:docId',
  // @ts-expect-error a Room permission does not fit a route whose loader yields a Doc
  permissions: [IsMember],
  objectLoader: (request) => docs.get(request.params.docId),
  messages: {},
  handlers: {}
}))

app.route(defineSocketRoute({
  url: '/ws/strict',
  messages: { v1: V1 },
  handlers: {
    // @ts-expect-error x is a number: a payload of the 1.x line is not any
    v1: (message) => { const text: string = message.payload.x; text.toUpperCase() }
  }
}))

// HTTP routes: each has its own object type, beside each other.
app.route(defineRoute({
  method: 'GET',
  url: '/api/docs/:docId',
  permissions: [IsAuthenticated, CanReadDoc],
  objectLoader: (request) => docs.get(request.params.docId),
  handler: async (request) => {
    expectType<Equal<typeof request.obj, Doc>>()
    expectType<Equal<typeof request.user, User>>()
    expectType<Equal<typeof request.params, { docId: string }>>()
    return { title: request.obj.title }
  }
}))

app.route(defineRoute({
  method: 'GET',
  url: '/api/rooms/:roomId',
  permissions: [IsMember],
  objectLoader: async (request) => rooms.get(request.params.roomId) ?? null,
  handler: async (request) => {
    expectType<Equal<typeof request.obj, Room>>()
    expectType<Equal<typeof request.user, User | null>>()
    return { members: request.obj.members }
  }
}))

app.route(defineRoute({
  method: 'GET',
  url: '/api/plain',
  handler: async (request) => {
    expectType<Equal<typeof request.obj, ChanxObject>>()
    expectType<Equal<typeof request.user, ChanxUser>>()
    return {}
  }
}))

app.route(defineRoute({
  method: 'GET',
  url: '/api/docs/:docId/bad',
  // @ts-expect-error a Room permission does not fit a route whose loader yields a Doc
  permissions: [IsMember],
  objectLoader: (request) => docs.get(request.params.docId),
  handler: async () => ({})
}))

app.route(defineRoute({
  method: 'GET',
  url: '/api/docs/:docId/params',
  // @ts-expect-error the URL declares docId, not id
  objectLoader: (request) => docs.get(request.params.id),
  handler: async () => ({})
}))
