import { test } from 'tap'
import Fastify from 'fastify'
import cookie from '@fastify/cookie'
import jwt from '@fastify/jwt'
import session from '@fastify/session'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import { Parser } from '@asyncapi/parser'
import chanx, { IsAuthenticated, defineSocketRoute, jwtAuthentication, sessionAuthentication, type AsyncApiDocument } from '../plugin'

/** An app with a room route (session, then JWT from header, cookie, query and subprotocol) and an anonymous echo route. */
async function buildApp (t: { teardown (fn: () => unknown): void }, options: Record<string, unknown> = {}) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cookie)
  await app.register(session, { secret: 'a-session-secret-of-at-least-32-characters', cookie: { secure: false } })
  await app.register(jwt, { secret: 'a-jwt-secret-of-at-least-32-characters-long' })
  await app.register(websocket)
  await app.register(chanx, options)
  app.route(defineSocketRoute({
    url: '/ws/rooms/:roomId',
    authentication: [sessionAuthentication(), jwtAuthentication({ cookie: 'token', query: 'token', protocol: 'bearer' })],
    permissions: [IsAuthenticated],
    groups: (ctx) => [`room:${ctx.params.roomId}`],
    messages: {
      chat: Type.Object({ text: Type.String({ minLength: 1, maxLength: 2000 }) }),
      history: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 100 }) })
    },
    outgoing: { chat: Type.Object({ text: Type.String(), username: Type.String() }) },
    events: { announce: Type.Object({ text: Type.String() }) },
    eventHandlers: { announce: () => undefined },
    sendCompletion: true,
    handlers: { chat: () => undefined, history: () => undefined }
  }))
  app.get('/ws/echo/:a-:b/*', { websocket: true, actionKey: 'type', messages: { say: Type.String() }, handlers: { say: () => undefined } } as never, () => {})
  app.get('/ws/plain', { websocket: true }, () => {})
  app.get('/api/rest', async () => ({ ok: true }))
  await app.ready()
  return app
}

/** `schema` with every `$ref` into `components/schemas` replaced by its target, at any depth. */
function inlined (document: AsyncApiDocument, schema: unknown): any {
  if (Array.isArray(schema)) return schema.map((item) => inlined(document, item))
  if (schema === null || typeof schema !== 'object') return schema
  const ref = (schema as { $ref?: unknown }).$ref
  if (typeof ref === 'string' && ref.startsWith('#/components/schemas/')) {
    return inlined(document, document.components.schemas![ref.slice('#/components/schemas/'.length)])
  }
  return Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, inlined(document, value)]))
}

/** A channel's messages with their `$ref`s into `components` followed, keyed as the channel keys them. */
function resolved (document: AsyncApiDocument, channel: string): Record<string, { payload: Record<string, any>, examples?: unknown[] }> {
  const out: Record<string, any> = {}
  for (const [key, ref] of Object.entries(document.channels[channel]!.messages as Record<string, { $ref: string }>)) {
    const message = document.components.messages![ref.$ref.replace('#/components/messages/', '')] as { payload: { $ref: string } }
    out[key] = { ...message, payload: inlined(document, message.payload) }
  }
  return out
}

test('the document passes @asyncapi/parser\'s AsyncAPI 3.0 validation with no error or warning', async (t) => {
  const app = await buildApp(t, { asyncapi: { info: { title: 'Rooms', version: '2.1.0', description: 'Chat rooms' } } })
  const document = app.chanx.asyncapi()
  const diagnostics = await new Parser().validate(document as never)
  // Severity 0 is an error, 1 a warning; 2 and 3 are hints (the parser suggests AsyncAPI 3.1).
  t.same(diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.path.join('.')}: ${d.message}`), [])
  t.equal(document.asyncapi, '3.0.0')
  t.same(document.info, { title: 'Rooms', version: '2.1.0', description: 'Chat rooms' })
})

test('every socket route is a channel with its address and path params; HTTP routes are not', async (t) => {
  const document = (await buildApp(t)).chanx.asyncapi()
  t.same(Object.keys(document.channels), ['ws_rooms_roomId', 'ws_echo_a_b', 'ws_plain'])
  const room = document.channels.ws_rooms_roomId!
  t.equal(room.address, '/ws/rooms/{roomId}')
  t.same(Object.keys(room.parameters as object), ['roomId'])
  const echo = document.channels['ws_echo_a_b']!
  t.equal(echo.address, '/ws/echo/{a}-{b}/{wildcard}')
  t.same(Object.keys(echo.parameters as object), ['a', 'b', 'wildcard'])
  t.same((echo['x-chanx-route'] as { params: string[] }).params, ['a', 'b', '*'])
  t.notOk(document.channels.ws_plain!.parameters, 'no params, no parameters object')
  t.same(document.info, { title: 'WebSocket API', version: '1.0.0' }, 'the default info')
})

test('incoming actions carry their TypeBox schemas inside the wire frame, one receive operation each', async (t) => {
  const document = (await buildApp(t)).chanx.asyncapi()
  const messages = resolved(document, 'ws_rooms_roomId')
  t.same(messages['client.chat']!.payload, {
    type: 'object',
    required: ['action', 'payload'],
    properties: {
      action: { type: 'string', const: 'chat', default: 'chat' },
      payload: { type: 'object', required: ['text'], properties: { text: { type: 'string', minLength: 1, maxLength: 2000 } }, title: 'ChatPayload' }
    },
    title: 'ChatMessage'
  })
  t.same(messages['client.history']!.payload.properties.payload.properties.limit, { type: 'integer', minimum: 1, maximum: 100 })
  t.same(messages['client.ping']!.payload.required, ['action'], 'ping needs no payload')
  const operation = document.operations['ws_rooms_roomId-receive-chat']!
  t.same(operation.action, 'receive')
  t.same(operation.channel, { $ref: '#/channels/ws_rooms_roomId' })
  t.same(operation.messages, [{ $ref: '#/channels/ws_rooms_roomId/messages/client.chat' }])
  t.same(document.operations['ws_rooms_roomId-receive-ping']!.reply, {
    channel: { $ref: '#/channels/ws_rooms_roomId' },
    messages: [{ $ref: '#/channels/ws_rooms_roomId/messages/server.pong' }]
  }, 'ping is answered with pong')
  // actionKey renames the tag in every frame.
  const echo = resolved(document, 'ws_echo_a_b')
  t.same(echo['client.say']!.payload.properties.type, { type: 'string', const: 'say', default: 'say' })
  t.same(echo['server.error']!.payload.required, ['type', 'payload'])
})

test('outgoing schemas, the built-in messages and channel events are documented', async (t) => {
  const document = (await buildApp(t)).chanx.asyncapi()
  const room = document.channels.ws_rooms_roomId!
  const messages = resolved(document, 'ws_rooms_roomId')
  t.same(Object.keys(messages), [
    'authentication', 'client.chat', 'client.history', 'client.ping', 'client.authenticate',
    'server.chat', 'server.pong', 'server.error', 'server.complete', 'server.group_complete'
  ])
  t.same(messages['server.chat']!.payload.properties.payload, {
    type: 'object', required: ['text', 'username'], properties: { text: { type: 'string' }, username: { type: 'string' } }, title: 'WsRoomsRoomIdChatPayload'
  }, 'an outgoing chat whose schema differs from the incoming chat gets the channel in its name')
  t.same(Object.keys(messages['server.chat']!.payload.properties), ['action', 'payload', 'is_mine', 'is_current'], 'a route with groups: broadcast flags')
  t.same(messages.authentication!.examples![0], {
    name: 'accepted',
    payload: { action: 'authentication', payload: { status_code: 200, status_text: 'OK', data: { detail: 'OK' } } }
  })
  t.same(messages['server.complete']!.payload.properties.payload, { type: 'null' })
  t.same(messages['server.pong']!.payload.properties.payload, { type: 'null' })
  const error = messages['server.error']!.payload.properties.payload
  t.equal(error.anyOf[0].properties.detail.type, 'string')
  t.same(error.anyOf[1].items.required, ['type', 'loc', 'msg'])
  t.same(messages['client.authenticate']!.payload.properties.payload.required, ['token'], 'the in-band JWT refresh')
  t.same(room['x-chanx-events'], { announce: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } } })
  const send = document.operations['ws_rooms_roomId-send']!
  t.equal(send.action, 'send')
  t.equal((send.messages as unknown[]).length, 6)
  t.same(messages['server.group_complete']!.payload.properties.action, { type: 'string', const: 'group_complete', default: 'group_complete' })
  // A route without messages gets only the authentication message.
  t.same(Object.keys(document.channels.ws_plain!.messages as object), ['authentication'])
  t.notOk(Object.hasOwn(document.channels['ws_echo_a_b']!.messages as object, 'server.complete'), 'no completion unless sendCompletion')
})

test('the authentication of each route becomes security schemes, in the order the authenticators look', async (t) => {
  const document: AsyncApiDocument = (await buildApp(t)).chanx.asyncapi()
  t.same(document.components.securitySchemes, {
    'session_cookie-cookie-sessionId': {
      type: 'httpApiKey',
      in: 'cookie',
      name: 'sessionId',
      description: "The session cookie (@fastify/session's cookie: `sessionId` unless its `cookieName` says otherwise): a browser that logged in sends it along."
    },
    'jwt-Bearer': {
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
      description: 'A JWT in `Authorization: Bearer <token>` (clients that can set headers; browsers cannot on a WebSocket).'
    },
    'jwt-cookie-token': { type: 'httpApiKey', in: 'cookie', name: 'token', description: 'A JWT in the `token` cookie: a browser sends it along.' },
    'jwt-query-token': { type: 'httpApiKey', in: 'query', name: 'token', description: 'A JWT in `?token=` (redacted from the logs).' },
    'jwt-protocol-bearer': {
      type: 'httpApiKey',
      in: 'header',
      name: 'Sec-WebSocket-Protocol',
      description: "A JWT offered as a subprotocol value `bearer.<token>` next to another protocol, e.g. `new WebSocket(url, ['chanx', 'bearer.' + token])`; never echoed."
    }
  })
  t.same((document.operations['ws_rooms_roomId-receive-chat']!.traits as any)[0].security, [
    { $ref: '#/components/securitySchemes/session_cookie-cookie-sessionId' },
    { $ref: '#/components/securitySchemes/jwt-Bearer' },
    { $ref: '#/components/securitySchemes/jwt-cookie-token' },
    { $ref: '#/components/securitySchemes/jwt-query-token' },
    { $ref: '#/components/securitySchemes/jwt-protocol-bearer' }
  ])
  t.match(document.channels.ws_rooms_roomId!.description, 'Authenticates with session cookie, then jwt')
  t.same((document.channels.ws_rooms_roomId!.bindings as any).ws.query.properties.token.type, 'string', 'the token query param')
  t.notOk(document.operations['ws_plain-send']!.traits, 'an anonymous route lists no security')
  t.match(document.channels.ws_plain!.description, 'No authenticator')
})

test('a custom authenticator describes itself with scheme; one without is counted as custom', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  await app.register(chanx)
  const apiKey = { scheme: { kind: 'api key', sources: [{ in: 'header' as const, name: 'X-Api-Key' }] }, authenticate: () => null }
  app.get('/ws/keyed', { websocket: true, authentication: [apiKey, { authenticate: () => null }] }, () => {})
  await app.ready()
  const document = app.chanx.asyncapi()
  t.same(document.components.securitySchemes, {
    'api_key-header-X-Api-Key': { type: 'httpApiKey', in: 'header', name: 'X-Api-Key', description: 'Credentials (api key) in the `X-Api-Key` header.' }
  })
  t.match(document.channels.ws_keyed!.description, 'api key, then 1 custom authenticator(s)')
  t.same(await new Parser().validate(document as never).then((d) => d.filter((x) => x.severity <= 1)), [])
})

test('asyncapi() gives a fresh copy each call', async (t) => {
  const app = await buildApp(t)
  const first = app.chanx.asyncapi()
  first.channels.ws_plain!.address = '/changed'
  t.equal(app.chanx.asyncapi().channels.ws_plain!.address, '/ws/plain')
})
