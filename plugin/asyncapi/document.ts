/**
 * The AsyncAPI 3.0 document of the socket routes (issue 7), generated from what the routes already declare:
 * their URL and its params, their authenticators' `scheme`, and the TypeBox schemas of `messages`,
 * `outgoing` and `events` (TypeBox schemas are JSON Schema). Nothing extra is declared by the user.
 *
 * The document describes the server: what a client sends is a `receive` operation, what the server sends
 * a `send` operation. Each message is the whole frame, `{"action": ..., "payload": ...}`, so a tool that
 * reads the document sees the wire as it is.
 */
import type { FastifyInstance } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import type { Authenticator, CredentialSource } from '../auth/authenticator'
import { ChanxAuthenticator } from '../auth/authenticator'
import type { AsyncApiInfo, AsyncApiServer, ResolvedAsyncApiOptions } from './options'
import { addressOf, pathParams, type SocketRouteRecord } from './routes'
import { hoistTitledSchemas, pascalOf, RESERVED_TITLES } from './schemas'
import type { Json, JsonObject } from './yaml'
import { DETAIL_BINARY, DETAIL_HANDLER_FAILED, DETAIL_INVALID_JSON, DETAIL_RATE_LIMITED } from '../core/wire'

/** The AsyncAPI 3.0 document; plain JSON. */
export interface AsyncApiDocument {
  asyncapi: '3.0.0'
  info: AsyncApiInfo
  servers?: Record<string, AsyncApiServer>
  defaultContentType: 'application/json'
  channels: Record<string, JsonObject>
  operations: Record<string, JsonObject>
  components: { securitySchemes?: Record<string, JsonObject>, schemas?: Record<string, JsonObject>, messages?: Record<string, JsonObject> }
}

/** A TypeBox schema as plain JSON Schema: its symbol keys (`Kind`, `Optional`) do not survive JSON. */
function jsonSchema (schema: TSchema | unknown): Json {
  return JSON.parse(JSON.stringify(schema) ?? 'null') as Json
}

/** `GET /ws/rooms/:room` → `ws_rooms_room`: Chanx's generator names a Python package after a channel's title. */
function identifierOf (text: string): string {
  const id = text.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_+|_+$/g, '')
  if (id === '') return 'root'
  return /^[0-9]/.test(id) ? `channel_${id}` : id
}

function idOf (text: string): string {
  const id = text.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '')
  return id === '' ? 'root' : id
}

const STATUS_CODES: Json = [
  { code: 4401, status: 401, meaning: 'not authenticated or bad credentials' },
  { code: 4403, status: 403, meaning: 'authenticated but not allowed, or no credentials on a route without a challenge' },
  { code: 4404, status: 404, meaning: 'the object in the URL does not exist' },
  { code: 4429, status: 429, meaning: 'too many connections for this user or IP' },
  { code: 4500, status: 500, meaning: 'the server failed during the handshake' }
]

function frame (actionKey: string, action: Json | null, payload: Json, requirePayload: boolean, extra: JsonObject = {}): JsonObject {
  return {
    type: 'object',
    required: requirePayload ? [actionKey, 'payload'] : [actionKey],
    properties: {
      [actionKey]: action === null ? { type: 'string' } : { type: 'string', const: action, default: action },
      payload,
      ...extra
    }
  }
}

const ERROR_LIST: JsonObject = {
  type: 'array',
  items: {
    type: 'object',
    required: ['type', 'loc', 'msg'],
    properties: {
      type: { type: 'string', description: "pydantic's error name where one matches, e.g. missing, string_type" },
      loc: { type: 'array', items: { anyOf: [{ type: 'string' }, { type: 'integer' }] }, description: 'the action, "payload", then the path inside the payload' },
      msg: { type: 'string' }
    }
  }
}

const DETAIL: JsonObject = { type: 'object', required: ['detail'], properties: { detail: { type: 'string' } } }

/** How each credential source reads in the document's security schemes. */
function securityScheme (kind: string, source: CredentialSource, app: FastifyInstance): { id: string, scheme: JsonObject } | null {
  const what = kind === 'jwt' ? 'A JWT' : kind === 'session cookie' ? 'The session' : `Credentials (${kind})`
  switch (source.in) {
    case 'header':
      if ('scheme' in source && source.name.toLowerCase() === 'authorization') {
        return {
          id: idOf(`${kind}-${source.scheme}`),
          scheme: kind === 'jwt'
            ? { type: 'http', scheme: source.scheme.toLowerCase(), bearerFormat: 'JWT', description: 'A JWT in `Authorization: Bearer <token>` (clients that can set headers; browsers cannot on a WebSocket).' }
            : { type: 'http', scheme: source.scheme.toLowerCase(), description: `${what} in \`Authorization: ${source.scheme} ...\`.` }
        }
      }
      return { id: idOf(`${kind}-header-${source.name}`), scheme: { type: 'httpApiKey', in: 'header', name: source.name, description: `${what} in the \`${source.name}\` header.` } }
    case 'cookie': {
      let name = source.name
      let note = ''
      if (name === undefined && kind === 'jwt') {
        name = (app as unknown as { jwt?: { cookie?: { cookieName?: string } } }).jwt?.cookie?.cookieName
        if (name === undefined) return null // @fastify/jwt has no cookie: the authenticator reads none
      }
      if (name === undefined) {
        name = 'sessionId'
        note = " (@fastify/session's cookie: `sessionId` unless its `cookieName` says otherwise)"
      }
      const description = kind === 'session cookie'
        ? `The session cookie${note}: a browser that logged in sends it along.`
        : `${what} in the \`${name}\` cookie${note}: a browser sends it along.`
      return { id: idOf(`${kind}-cookie-${name}`), scheme: { type: 'httpApiKey', in: 'cookie', name, description } }
    }
    case 'query':
      return {
        id: idOf(`${kind}-query-${source.name}`),
        scheme: { type: 'httpApiKey', in: 'query', name: source.name, description: `${what} in \`?${source.name}=\` (redacted from the logs).` }
      }
    case 'protocol':
      return {
        id: idOf(`${kind}-protocol-${source.prefix}`),
        scheme: {
          type: 'httpApiKey',
          in: 'header',
          name: 'Sec-WebSocket-Protocol',
          description: `${what} offered as a subprotocol value \`${source.prefix}.<token>\` next to another protocol, e.g. \`new WebSocket(url, ['chanx', '${source.prefix}.' + token])\`; never echoed.`
        }
      }
  }
}

interface Builder {
  app: FastifyInstance
  channels: Record<string, JsonObject>
  operations: Record<string, JsonObject>
  securitySchemes: Record<string, JsonObject>
  schemas: Record<string, JsonObject>
  messages: Record<string, JsonObject>
}

/**
 * Stores a message in `components`, as Chanx's documents do: the frame schema titled and kept in
 * `components/schemas`, the message in `components/messages` pointing at it with `$ref` (chanx-js finds
 * message types that way; Chanx's generator makes classes only from titled schemas), and every titled
 * object inside it (the payload among them) a schema of its own there too, by `$ref` (see `./schemas`). A
 * name another route already took for a different schema gets the channel's name in front. Returns the
 * message's `$ref`.
 */
function addComponent (builder: Builder, channelTitle: string, key: string, message: JsonObject): Json {
  const frameSchema = message.payload as JsonObject
  /** The frame schema under `name`; an untitled object payload is titled after it (`ChatMessage` → `ChatPayload`). */
  const titled = (name: string) => {
    const copy = JSON.parse(JSON.stringify(frameSchema)) as JsonObject
    copy.title = name
    const payload = (copy.properties as JsonObject | undefined)?.payload as JsonObject | undefined
    if (payload !== undefined && payload.type === 'object' && payload.title === undefined) payload.title = name.replace(/Message(\d*)$/, 'Payload$1')
    return hoistTitledSchemas(copy, builder.schemas, channelTitle)
  }
  const free = (name: string): boolean => builder.schemas[name] === undefined ||
    JSON.stringify(builder.schemas[name]) === JSON.stringify(titled(name).root)
  let title = pascalOf(key.replace(/^(client|server)\./, '') + '_message')
  if (RESERVED_TITLES.has(title) || !free(title)) title = pascalOf(channelTitle) + title
  for (let n = 2; !free(title); n++) title = `${pascalOf(channelTitle)}${pascalOf(key)}Message${n}`
  const { root, added } = titled(title)
  Object.assign(builder.schemas, added)
  builder.schemas[title] = root
  const messageKey = title[0]!.toLowerCase() + title.slice(1)
  builder.messages[messageKey] = { ...message, payload: { $ref: `#/components/schemas/${title}` } }
  return { $ref: `#/components/messages/${messageKey}` }
}

/** The security alternatives of a route (the first authenticator that finds a user wins). */
function routeSecurity (builder: Builder, authentication: readonly Authenticator<unknown>[]): { refs: Json[], custom: number, kinds: string[] } {
  const refs: Json[] = []
  const kinds: string[] = []
  let custom = 0
  for (const authenticator of authentication) {
    const scheme = authenticator.scheme
    if (scheme === undefined || !Array.isArray(scheme.sources)) { custom++; continue }
    kinds.push(scheme.kind)
    for (const source of scheme.sources) {
      const described = securityScheme(scheme.kind, source, builder.app)
      if (described === null) continue
      if (scheme.description !== undefined) described.scheme.description = scheme.description
      let id = described.id
      for (let n = 2; builder.securitySchemes[id] !== undefined && JSON.stringify(builder.securitySchemes[id]) !== JSON.stringify(described.scheme); n++) id = `${described.id}_${n}`
      builder.securitySchemes[id] = described.scheme
      const ref = { $ref: `#/components/securitySchemes/${id}` }
      if (!refs.some((r) => (r as { $ref: string }).$ref === ref.$ref)) refs.push(ref)
    }
  }
  return { refs, custom, kinds }
}

function queryBinding (record: SocketRouteRecord, authentication: readonly Authenticator<unknown>[]): JsonObject | null {
  const properties: JsonObject = {}
  const given = jsonSchema(record.querystring) as JsonObject | null
  if (given !== null && typeof given === 'object' && given.properties !== undefined && typeof given.properties === 'object') {
    Object.assign(properties, given.properties)
  }
  for (const authenticator of authentication) {
    for (const source of authenticator.scheme?.sources ?? []) {
      if (source.in === 'query' && properties[source.name] === undefined) {
        properties[source.name] = { type: 'string', description: `credentials (${authenticator.scheme!.kind}); redacted from the logs` }
      }
    }
  }
  if (Object.keys(properties).length === 0) return null
  const query: JsonObject = { type: 'object', properties }
  if (given !== null && typeof given === 'object' && Array.isArray(given.required)) query.required = given.required
  return query
}

function addRoute (builder: Builder, record: SocketRouteRecord, taken: Set<string>): void {
  const { handshake } = record
  const router = handshake.router
  const actionKey = router?.actionKey ?? 'action'
  let channelId = identifierOf(record.url)
  for (let n = 2; taken.has(channelId); n++) channelId = `${identifierOf(record.url)}_${n}`
  taken.add(channelId)
  const channelRef = { $ref: `#/channels/${channelId}` }
  const address = addressOf(record.url)

  const parameters: JsonObject = {}
  for (const param of pathParams(record.url)) {
    const name = param.name === '*' ? 'wildcard' : param.name
    parameters[name] = {
      description: param.name === '*'
        ? 'The rest of the path (the route\'s `*`).'
        : `The \`:${param.name}\` path param${param.pattern === undefined ? '' : ` (must match \`${param.pattern}\`)`}.`
    }
  }

  const authentication = handshake.authenticator.authentication
  const security = routeSecurity(builder, authentication)
  const messages: JsonObject = {}
  const grouped = handshake.groups !== undefined
  const copyFlags: JsonObject = grouped
    ? {
        is_mine: { type: 'boolean', description: 'on broadcast copies: the same user sent it' },
        is_current: { type: 'boolean', description: 'on broadcast copies: this very connection sent it' }
      }
    : {}

  if (handshake.sendAuthenticationMessage && !handshake.rejectUpgrade) {
    messages.authentication = {
      name: 'authentication',
      title: 'Authentication result',
      summary: 'The first message: whether the handshake let the client in. On refusal the socket is closed with 4000 + status_code.',
      payload: frame(actionKey, 'authentication', {
        type: 'object',
        required: ['status_code', 'status_text', 'data'],
        properties: {
          status_code: { type: 'integer', description: '200, or the refusal status (401, 403, 404, 429, 500)' },
          status_text: { type: 'string' },
          data: { ...DETAIL, description: '{ detail } unless a custom authenticator gives other data' }
        }
      }, true),
      examples: [
        { name: 'accepted', payload: { [actionKey]: 'authentication', payload: { status_code: 200, status_text: 'OK', data: { detail: 'OK' } } } },
        { name: 'refused', payload: { [actionKey]: 'authentication', payload: { status_code: 403, status_text: 'Forbidden', data: { detail: 'You do not have permission to perform this action.' } } } }
      ],
      'x-chanx-close-codes': STATUS_CODES
    }
  }

  const incoming: string[] = []
  const outgoing: string[] = []
  if (router !== null) {
    const receive = (action: string, payload: Json, summary: string, requirePayload: boolean): string => {
      const id = `client.${idOf(action)}`
      messages[id] = { name: action, title: action, summary, payload: frame(actionKey, action, payload, requirePayload) }
      incoming.push(id)
      return id
    }
    const send = (action: string | null, payload: Json, summary: string, id: string): string => {
      messages[id] = { name: action ?? id, title: action ?? id, summary, payload: frame(actionKey, action, payload, true, copyFlags) }
      outgoing.push(id)
      return id
    }
    let ownPing = false
    for (const action of router.actions.values()) {
      if (action.name === 'ping') ownPing = true
      receive(action.name, jsonSchema(action.schema), `Handled by the route's \`${action.name}\` handler.`, true)
    }
    if (!ownPing) receive('ping', {}, 'Built in: answered with pong, whatever its payload.', false)
    if (router.refreshCredentials !== null && !router.actions.has('authenticate')) {
      receive('authenticate', { type: 'object', required: ['token'], properties: { token: { type: 'string', description: 'a fresh JWT of the same user' } } },
        'Built in: refreshes the JWT in-band; answered with the authentication message (a bad token: 401, then close 4401).', true)
    }
    if (router.outgoingSchemas !== null) {
      for (const [name, schema] of router.outgoingSchemas) send(name, jsonSchema(schema), `Sent by the route's handlers${grouped ? ' (and broadcast to its groups)' : ''}.`, `server.${idOf(name)}`)
    } else {
      send(null, {}, 'What a handler returns or broadcasts (the route declares no `outgoing` schemas).', 'server.message')
    }
    if (!ownPing) send('pong', { type: 'null' }, 'The answer to ping.', 'server.pong')
    send('error', {
      anyOf: [
        { ...DETAIL, description: `"${DETAIL_INVALID_JSON}", "${DETAIL_BINARY}", "${DETAIL_HANDLER_FAILED}" or "${DETAIL_RATE_LIMITED}"` },
        { ...ERROR_LIST, description: 'Unknown or missing action, or a payload its schema rejects (loc starts with the action).' }
      ]
    }, 'A frame that could not be handled; the connection stays open.', 'server.error')
    if (router.sendCompletion) {
      send('complete', { type: 'null' }, 'Sent after each handled frame and each channel event, errors included.', 'server.complete')
      send('group_complete', { type: 'null' }, 'Sent after each group message relayed to this socket.', 'server.group_complete')
    }
  }
  if (messages.authentication !== undefined) outgoing.unshift('authentication')

  const description: string[] = []
  if (record.description !== undefined) description.push(record.description)
  description.push(security.refs.length === 0 && security.custom === 0
    ? 'No authenticator: connections are anonymous.'
    : `Authenticates with ${[...security.kinds, ...(security.custom > 0 ? [`${security.custom} custom authenticator(s)`] : [])].join(', then ')}; the first that finds a user wins.`)
  if (handshake.rejectUpgrade) description.push('A refused handshake is answered with its HTTP status (no authentication message).')
  if (grouped) description.push('Joins groups on connect: broadcast copies carry is_mine and is_current.')

  const channelMessages: JsonObject = {}
  for (const [key, message] of Object.entries(messages)) channelMessages[key] = addComponent(builder, channelId, key, message as JsonObject)
  const channel: JsonObject = {
    address,
    title: channelId,
    summary: record.summary ?? `${record.method} ${record.url}`,
    description: description.join(' '),
    messages: channelMessages
  }
  if (Object.keys(parameters).length > 0) channel.parameters = parameters
  const query = queryBinding(record, authentication)
  channel.bindings = { ws: { method: 'GET', ...(query === null ? {} : { query }), bindingVersion: '0.1.0' } }
  if (router?.events != null && router.events.size > 0) {
    const events: JsonObject = {}
    for (const [name, event] of router.events) events[name] = jsonSchema(event.schema)
    channel['x-chanx-events'] = events
  }
  channel['x-chanx-route'] = {
    url: record.url,
    params: record.params.slice(),
    actionKey,
    sendAuthenticationMessage: handshake.sendAuthenticationMessage,
    rejectUpgrade: handshake.rejectUpgrade,
    authenticatorClass: handshake.authenticator.constructor === ChanxAuthenticator ? null : handshake.authenticator.constructor.name
  }
  builder.channels[channelId] = channel

  // In a trait, not on the operation: Chanx's model types `operations.*.security` (and `servers.*.security`)
  // in AsyncAPI 2.x's shape, so 3.0's `[{$ref}]` there makes `chanx generate-client` reject the file. 3.0
  // applies a trait's `security` to its operation; Chanx's model reads traits loosely.
  const securityList: JsonObject = security.refs.length > 0 ? { traits: [{ security: security.refs }] } : {}
  const messageRef = (id: string): Json => ({ $ref: `#/channels/${channelId}/messages/${id}` })
  for (const id of incoming) {
    const name = (messages[id] as { name: string }).name
    const operation: JsonObject = {
      action: 'receive',
      channel: channelRef,
      title: `Client sends ${name}`,
      messages: [messageRef(id)],
      ...securityList
    }
    if (name === 'ping' && messages['server.pong'] !== undefined) operation.reply = { channel: channelRef, messages: [messageRef('server.pong')] }
    if (id === 'client.authenticate' && messages.authentication !== undefined && !router!.actions.has('authenticate')) {
      operation.reply = { channel: channelRef, messages: [messageRef('authentication')] }
    }
    builder.operations[idOf(`${channelId}-receive-${name}`)] = operation
  }
  if (outgoing.length > 0) {
    builder.operations[idOf(`${channelId}-send`)] = {
      action: 'send',
      channel: channelRef,
      title: 'Server sends',
      messages: outgoing.map(messageRef),
      ...securityList
    }
  }
}

/** Builds the document from the recorded routes, in declaration order. */
export function buildAsyncApiDocument (app: FastifyInstance, routes: readonly SocketRouteRecord[], options: ResolvedAsyncApiOptions): AsyncApiDocument {
  const builder: Builder = { app, channels: {}, operations: {}, securitySchemes: {}, schemas: {}, messages: {} }
  const taken = new Set<string>()
  for (const record of routes) addRoute(builder, record, taken)
  const document: AsyncApiDocument = {
    asyncapi: '3.0.0',
    info: { ...options.info },
    ...(options.servers === undefined ? {} : { servers: options.servers }),
    defaultContentType: 'application/json',
    channels: builder.channels,
    operations: builder.operations,
    components: {
      ...(Object.keys(builder.securitySchemes).length > 0 ? { securitySchemes: builder.securitySchemes } : {}),
      ...(Object.keys(builder.schemas).length > 0 ? { schemas: builder.schemas, messages: builder.messages } : {})
    }
  }
  return document
}
