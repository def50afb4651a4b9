// Type tests: `npm run typecheck` fails when an assertion below stops holding. `expectType<Equal<A, B>>()`
// demands identical types; each `@ts-expect-error` demands that the line after it does not compile.
import Fastify, { type FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import jwt from '@fastify/jwt'
import chanx, {
  AllowAny,
  AuthenticationFailed,
  AuthenticationResult,
  ChanxAuthenticator,
  IsAuthenticated,
  and,
  jwtAuthentication,
  not,
  or,
  sessionAuthentication,
  type Authenticator,
  type ChanxObject,
  type ChanxUser,
  type JwtPayload,
  type Permission
} from 'fastify-chanx'

interface User { id: number, name: string, active: boolean }
interface Room { id: string, members: number[] }

// One declaration types request.user and request.obj everywhere. @fastify/jwt types request.user too,
// so an app that uses it declares the same user type there.
declare module 'fastify-chanx' {
  interface ChanxTypes { user: User | null, obj: Room | null }
}
declare module '@fastify/jwt' {
  interface FastifyJWT { payload: { sub: number }, user: User | null }
}

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
function expectType<T extends true> (): T | void {}

expectType<Equal<ChanxUser, User | null>>()
expectType<Equal<ChanxObject, Room | null>>()

const users = new Map<number, User>()
const rooms = new Map<string, Room>()

const session = sessionAuthentication({
  key: 'userId',
  loadUser: (id) => users.get(Number(id)) ?? null
})
const bearer = jwtAuthentication({
  cookie: 'token',
  query: 'token',
  loadUser: (payload) => {
    // The payload type declared in FastifyJWT, without a cast.
    expectType<Equal<typeof payload, { sub: number }>>()
    expectType<Equal<typeof payload, JwtPayload>>()
    return users.get(payload.sub) ?? null
  }
})
expectType<Equal<typeof session, Authenticator<User>>>()

// A permission's object parameter is the declared object type.
const IsRoomMember: Permission = {
  message: 'You are not a member of this room.',
  hasObjectPermission (request, room) {
    expectType<Equal<typeof room, Room | null>>()
    return request.user !== null && room !== null && room.members.includes(request.user.id)
  }
}

const app = Fastify()
void app.register(jwt, { secret: 'x'.repeat(32), cookie: { cookieName: 'token', signed: false } })
void app.register(websocket)
void app.register(chanx, { authentication: [session, bearer], permissions: [IsAuthenticated] })

app.get('/ws/rooms/:roomId', {
  websocket: true,
  permissions: [IsAuthenticated, IsRoomMember, or(AllowAny, not(IsRoomMember)), and(IsAuthenticated)],
  objectLoader: (request: FastifyRequest<{ Params: { roomId: string } }>) => rooms.get(request.params.roomId) ?? null
}, (socket, request) => {
  // The user and object reach a plain @fastify/websocket handler without casts.
  expectType<Equal<typeof request.user, User | null>>()
  expectType<Equal<typeof request.obj, Room | null>>()
  socket.send(`${request.user?.name ?? 'anonymous'} in ${request.obj?.id ?? '?'}`)
})

app.get('/api/rooms/:roomId', {
  authentication: [bearer],
  permissions: [IsAuthenticated, IsRoomMember],
  objectLoader: (request: FastifyRequest<{ Params: { roomId: string } }>) => rooms.get(request.params.roomId)
}, async (request) => {
  expectType<Equal<typeof request.user, User | null>>()
  return { room: request.obj?.id, user: request.user?.id }
})

// The seed's custom authenticator, translated.
class ActiveInModuleAuthenticator extends ChanxAuthenticator<User | null, Room | null> {
  override async authenticate (request: FastifyRequest): Promise<AuthenticationResult<User | null, Room | null>> {
    const result = await super.authenticate(request)
    expectType<Equal<typeof result.user, User | null>>()
    if (result.isAuthenticated && result.user !== null && !result.user.active) {
      return new AuthenticationResult({
        isAuthenticated: false,
        statusCode: 403,
        statusText: 'Forbidden',
        data: { detail: 'User is not active in this module' },
        user: result.user,
        obj: null
      })
    }
    return result
  }
}
app.get('/ws/module', { websocket: true, authenticatorClass: ActiveInModuleAuthenticator }, (socket) => socket.close())

// A hand-written authenticator needs no base class.
const apiKey: Authenticator<User> = {
  challenge: 'ApiKey',
  authenticate (request) {
    const key = request.headers['x-api-key']
    if (key === undefined) return null
    const user = users.get(Number(key))
    if (user === undefined) throw new AuthenticationFailed('Unknown API key.')
    return user
  }
}
app.get('/ws/key', { websocket: true, authentication: [apiKey] }, (socket) => socket.close())

// Wrong shapes are compile errors.
// @ts-expect-error permissions take permission objects
app.get('/bad/1', { websocket: true, permissions: [() => true] }, (socket) => socket.close())
// @ts-expect-error authenticators need authenticate(request)
app.get('/bad/2', { websocket: true, authentication: [{ challenge: 'Bearer' }] }, (socket) => socket.close())
// @ts-expect-error sendAuthenticationMessage is a boolean
app.get('/bad/3', { websocket: true, sendAuthenticationMessage: 'no' }, (socket) => socket.close())
// @ts-expect-error authenticatorClass must construct a ChanxAuthenticator
app.get('/bad/4', { websocket: true, authenticatorClass: Object }, (socket) => socket.close())
// @ts-expect-error plugin options are checked too
void app.register(chanx, { httpRoutes: 'some' })
app.get('/recoverable', { websocket: true, groups: () => ['lobby'], history: true }, (socket) => socket.close())
// @ts-expect-error a route's history is a boolean
app.get('/bad/history', { websocket: true, history: { size: 5 } }, (socket) => socket.close())
void app.register(chanx, { history: true })
void app.register(chanx, { history: { size: 500, maxAge: 60_000 } })
// @ts-expect-error history limits are numbers
void app.register(chanx, { history: { size: '500' } })
// @ts-expect-error hasObjectPermission receives the declared object type
const wrongObject: Permission = { hasObjectPermission: (_request, room: { name: string }) => room.name === '' }
void wrongObject
