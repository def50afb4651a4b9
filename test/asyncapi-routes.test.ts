import { test } from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import { Parser } from '@asyncapi/parser'
import chanx, { ChanxAuthenticator, defineSocketRoute, jwtAuthentication } from '../plugin'

/** How route shapes the other AsyncAPI tests leave out appear in the document: URL syntax, schema, options, clashing ids. */

class AuditedAuthenticator extends ChanxAuthenticator {}

async function documentOf (t: { teardown (fn: () => unknown): void }) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(jwt, { secret: 'a-jwt-secret-of-at-least-32-characters-long' })
  await app.register(websocket)
  await app.register(chanx)
  const keyA = { scheme: { kind: 'api key', description: 'Key A', sources: [{ in: 'header' as const, name: 'X-Key' }] }, authenticate: () => null }
  const keyB = { scheme: { kind: 'api key', description: 'Key B', sources: [{ in: 'header' as const, name: 'X-Key' }] }, authenticate: () => null }
  app.get('/ws/items/:id(^\\d+)', {
    websocket: true,
    schema: { summary: 'Items', description: 'One item by number.', querystring: Type.Object({ view: Type.String() }) },
    authentication: [jwtAuthentication({ query: 'token' })],
    rejectUpgrade: true,
    authenticatorClass: AuditedAuthenticator
  } as never, () => {})
  app.route({ method: ['GET'], url: '/ws/a.b', authentication: [keyA, keyB], handler: () => {}, wsHandler: () => {} } as never)
  app.route(defineSocketRoute({ url: '/ws/a_b', messages: { ping: Type.Null() }, handlers: { ping: () => ({ action: 'pong', payload: 'mine' }) } }))
  app.get('/ws/at::hour/:x(a(b|c)\\))', { websocket: true }, () => {})
  await app.ready()
  return app.chanx.asyncapi()
}

test('a path param with a regular expression is documented with it; "::" is a literal colon', async (t) => {
  const document = await documentOf(t)
  const items = document.channels.ws_items_id_d!
  t.equal(items.address, '/ws/items/{id}')
  t.same(items.parameters, { id: { description: 'The `:id` path param (must match `^\\d+`).' } })
  const hour = document.channels.ws_at_hour_x_a_b_c!
  t.equal(hour.address, '/ws/at:hour/{x}', 'nested and escaped parentheses end the pattern where Fastify ends it')
  t.same(hour.parameters, { x: { description: 'The `:x` path param (must match `a(b|c)\\)`).' } })
})

test('the route schema gives the summary, the description and the query binding, credentials added', async (t) => {
  const items = (await documentOf(t)).channels.ws_items_id_d!
  t.equal(items.title, 'ws_items_id_d', 'the title is an identifier, for Chanx\'s generators')
  t.equal(items.summary, 'Items', 'the route schema\'s summary')
  t.equal(items.description, 'One item by number. Authenticates with jwt; the first that finds a user wins. ' +
    'A refused handshake is answered with its HTTP status (no authentication message).')
  t.same(items.bindings, {
    ws: {
      method: 'GET',
      query: {
        type: 'object',
        properties: { view: { type: 'string' }, token: { type: 'string', description: 'credentials (jwt); redacted from the logs' } },
        required: ['view']
      },
      bindingVersion: '0.1.0'
    }
  })
  t.same(items['x-chanx-route'], {
    url: '/ws/items/:id(^\\d+)',
    params: ['id'],
    actionKey: 'action',
    sendAuthenticationMessage: true,
    rejectUpgrade: true,
    authenticatorClass: 'AuditedAuthenticator'
  })
})

test('URLs that give the same id get numbered channels; schemes that clash by id but differ get numbered too', async (t) => {
  const document = await documentOf(t)
  t.same(Object.keys(document.channels), ['ws_items_id_d', 'ws_a_b', 'ws_a_b_2', 'ws_at_hour_x_a_b_c'])
  t.equal(document.channels.ws_a_b!.address, '/ws/a.b')
  t.equal(document.channels.ws_a_b_2!.address, '/ws/a_b')
  t.same(document.components.securitySchemes, {
    'jwt-Bearer': {
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
      description: 'A JWT in `Authorization: Bearer <token>` (clients that can set headers; browsers cannot on a WebSocket).'
    },
    // @fastify/jwt has no cookie here: the authenticator reads none, so none is documented.
    'jwt-query-token': { type: 'httpApiKey', in: 'query', name: 'token', description: 'A JWT in `?token=` (redacted from the logs).' },
    'api_key-header-X-Key': { type: 'httpApiKey', in: 'header', name: 'X-Key', description: 'Key A' },
    'api_key-header-X-Key_2': { type: 'httpApiKey', in: 'header', name: 'X-Key', description: 'Key B' }
  })
  t.equal(document.channels.ws_a_b!.description, 'Authenticates with api key, then api key; the first that finds a user wins.')
})

test('a route with its own ping handler documents no built-in ping or pong', async (t) => {
  const document = await documentOf(t)
  t.same(Object.keys(document.operations).filter((id) => id.startsWith('ws_a_b_2')), ['ws_a_b_2-receive-ping', 'ws_a_b_2-send'])
  t.same(Object.keys(document.channels.ws_a_b_2!.messages as object), ['authentication', 'client.ping', 'server.message', 'server.error'])
  t.same(await new Parser().validate(document as never).then((d) => d.filter((x) => x.severity <= 1).map((x) => x.message)), [])
})
