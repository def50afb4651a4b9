import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import { Parser } from '@asyncapi/parser'
import chanx, { defineSocketRoute, jwtAuthentication } from '../plugin'
import jwt from '@fastify/jwt'

/**
 * What Chanx 2.x's `chanx generate-client` (its pydantic model of AsyncAPI, then its codegen) and chanx-js's
 * codegen need of the document, checked on the document itself: titled schemas in components/schemas,
 * messages whose payload is a `$ref` to one, channel titles usable as package names, and no `security` in
 * the 2.x-typed places (operations, servers).
 */
async function buildApp (t: { teardown (fn: () => unknown): void }) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(jwt, { secret: 'a-jwt-secret-of-at-least-32-characters-long' })
  await app.register(websocket)
  await app.register(chanx, { asyncapi: { info: { title: 'Rooms', version: '1.0.0' }, servers: { local: { host: '127.0.0.1:3000', protocol: 'ws' } } } })
  const Chat = Type.Object({ text: Type.String() })
  app.route(defineSocketRoute({
    url: '/ws/rooms/:room',
    authentication: [jwtAuthentication({ query: 'token' })],
    messages: { chat: Chat, incoming: Type.Object({ n: Type.Integer() }) },
    outgoing: { chat: Type.Object({ text: Type.String(), from: Type.String() }) },
    handlers: { chat: () => undefined, incoming: () => undefined }
  }))
  app.route(defineSocketRoute({ url: '/ws/lobby', messages: { chat: Chat }, handlers: { chat: () => undefined } }))
  app.get('/2fa/ws', { websocket: true }, () => {})
  await app.ready()
  return app
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

test('every message payload is a $ref to a titled schema in components/schemas, as Chanx\'s documents have', async (t) => {
  const document = (await buildApp(t)).chanx.asyncapi()
  const schemas = document.components.schemas!
  const messages = document.components.messages!
  t.ok(Object.keys(messages).length > 0)
  for (const [key, message] of Object.entries(messages)) {
    const ref = (message.payload as { $ref?: string }).$ref
    t.match(ref, /^#\/components\/schemas\//, `${key}: payload is a $ref`)
    const name = ref!.slice('#/components/schemas/'.length)
    t.equal(schemas[name]?.title, name, `${key}: the schema's title is its name`)
    t.match(name, IDENTIFIER, `${key}: the title is a class name`)
    t.notOk(['IncomingMessage', 'OutgoingMessage'].includes(name), `${key}: never the generator's own union names`)
  }
  for (const channel of Object.values(document.channels)) {
    for (const ref of Object.values(channel.messages as Record<string, { $ref: string }>)) {
      t.ok(messages[ref.$ref.replace('#/components/messages/', '')], `${ref.$ref} exists`)
    }
  }
})

test('the same action with the same schema on two routes shares one schema; a different schema gets the channel\'s name', async (t) => {
  const document = (await buildApp(t)).chanx.asyncapi()
  const schemas = document.components.schemas!
  t.same((document.channels.ws_lobby!.messages as Record<string, unknown>)['client.chat'], { $ref: '#/components/messages/chatMessage' })
  t.same((document.channels.ws_rooms_room!.messages as Record<string, unknown>)['client.chat'], { $ref: '#/components/messages/chatMessage' })
  t.same((document.channels.ws_rooms_room!.messages as Record<string, unknown>)['server.chat'], { $ref: '#/components/messages/wsRoomsRoomChatMessage' })
  t.same((schemas.ChatMessage!.properties as any).payload, { $ref: '#/components/schemas/ChatPayload' })
  t.equal(schemas.ChatPayload!.title, 'ChatPayload')
  t.same((schemas.WsRoomsRoomChatMessage!.properties as any).payload, { $ref: '#/components/schemas/WsRoomsRoomChatPayload' })
  t.equal(schemas.WsRoomsRoomChatPayload!.title, 'WsRoomsRoomChatPayload')
  t.ok(schemas.WsRoomsRoomIncomingMessage, 'an action called "incoming" does not take the generator\'s IncomingMessage')
})

test('channel titles are stable, unique identifiers (Chanx names a package after each)', async (t) => {
  const document = (await buildApp(t)).chanx.asyncapi()
  const titles = Object.values(document.channels).map((channel) => channel.title)
  t.same(titles, ['ws_rooms_room', 'ws_lobby', 'channel_2fa_ws'])
  t.same(Object.keys(document.channels), titles, 'the channel ids are the titles')
  t.equal(document.channels.ws_rooms_room!.summary, 'GET /ws/rooms/:room', 'the route stays readable in summary')
})

test('security is declared in operation traits, never in operations.*.security or servers.*.security (2.x-typed in Chanx\'s model)', async (t) => {
  const document = (await buildApp(t)).chanx.asyncapi()
  for (const [id, operation] of Object.entries(document.operations)) t.notOk('security' in operation, `${id} has no security key`)
  for (const [id, server] of Object.entries(document.servers ?? {})) t.notOk('security' in server, `server ${id} has no security key`)
  const chat = document.operations['ws_rooms_room-receive-chat']!
  t.same(chat.traits, [{ security: [{ $ref: '#/components/securitySchemes/jwt-Bearer' }, { $ref: '#/components/securitySchemes/jwt-query-token' }] }])
  // Chanx types security lists as list[dict[str, list[str]]]: nothing of that shape is required, and a
  // trait is read as an object whose unknown keys are ignored.
  const diagnostics = await new Parser().validate(document as never)
  t.same(diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.path.join('.')}: ${d.message}`), [], 'valid AsyncAPI 3.0')
})

/** Every schema nested in `schema` (not `schema` itself), with its path. */
function * nestedSchemas (schema: unknown, path: string): Generator<[string, Record<string, unknown>]> {
  if (schema === null || typeof schema !== 'object') return
  for (const [key, value] of Object.entries(schema)) {
    if (value === null || typeof value !== 'object') continue
    for (const [name, child] of Array.isArray(value) || ['properties', 'patternProperties'].includes(key) ? Object.entries(value) : [[key, value]]) {
      if (child === null || typeof child !== 'object') continue
      yield [`${path}.${key}.${name}`, child as Record<string, unknown>]
      yield * nestedSchemas(child, `${path}.${key}.${name}`)
    }
  }
}

test('every titled object is a schema of its own in components/schemas, referred to by $ref, as pydantic lays them out', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  await app.register(chanx)
  const Author = Type.Object({ id: Type.Integer(), name: Type.String() }, { title: 'Author' })
  const Entry = Type.Object({ text: Type.String(), author: Author })
  app.route(defineSocketRoute({
    url: '/ws/a',
    messages: { chat: Type.Object({ text: Type.String() }) },
    outgoing: {
      chat: Entry,
      history: Type.Object({
        entries: Type.Array(Entry),
        by: Type.Object({ id: Type.String() }, { title: 'Author' }),
        for: Type.Object({ ok: Type.Boolean() }, { title: 'Author' }),
        kind: Type.Union([Type.Object({ a: Type.Null() }, { title: 'one kind' }), Type.Object({ b: Type.Null() }, { title: '2fa' })])
      })
    },
    handlers: { chat: () => undefined }
  }))
  app.route(defineSocketRoute({
    url: '/ws/b',
    messages: { chat: Type.Object({ text: Type.String() }) },
    outgoing: { chat: Entry, note: Type.Object({ field: Type.Object({ x: Type.Integer() }, { title: 'Field' }) }) },
    handlers: { chat: () => undefined }
  }))
  await app.ready()
  const document = app.chanx.asyncapi()
  const schemas = document.components.schemas!

  for (const [name, schema] of Object.entries(schemas)) {
    for (const [path, nested] of nestedSchemas(schema, name)) {
      t.notOk(typeof nested.title === 'string' && nested.properties !== undefined, `${path}: no titled object inline (${String(nested.title)})`)
      if (typeof nested.$ref === 'string') t.ok(schemas[nested.$ref.replace('#/components/schemas/', '')], `${path}: ${nested.$ref} exists`)
    }
  }
  t.same(schemas.Author, { type: 'object', required: ['id', 'name'], properties: { id: { type: 'integer' }, name: { type: 'string' } }, title: 'Author' })
  t.same(schemas.WsAChatPayload!.properties, { text: { type: 'string' }, author: { $ref: '#/components/schemas/Author' } }, 'the outgoing chat payload refers to Author')
  t.same((schemas.HistoryPayload!.properties as any).by, { $ref: '#/components/schemas/WsAAuthor' })
  t.same((schemas.HistoryPayload!.properties as any).for, { $ref: '#/components/schemas/WsAAuthor2' }, 'a third Author gets a number')
  t.same((schemas.HistoryPayload!.properties as any).kind, { anyOf: [{ $ref: '#/components/schemas/OneKind' }, { $ref: '#/components/schemas/M2fa' }] },
    'inside anyOf too; a title that is no class name becomes one')
  t.equal(schemas.OneKind!.title, 'OneKind')
  t.same(schemas.WsAAuthor, { type: 'object', required: ['id'], properties: { id: { type: 'string' } }, title: 'WsAAuthor' },
    'a different schema under a title already taken gets the channel\'s name, and its title follows')
  t.equal(schemas.Field, undefined, 'Field (pydantic\'s import in every generated module) is never a class name')
  t.equal(schemas.WsBField?.title, 'WsBField')
  const diagnostics = await new Parser().validate(document as never)
  t.same(diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.path.join('.')}: ${d.message}`), [], 'valid AsyncAPI 3.0')
})
