import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Type } from '@sinclair/typebox'
import { Parser } from '@asyncapi/parser'
import chanx from '../plugin'
import { toYaml } from '../plugin/asyncapi/yaml'

async function buildApp (t: { teardown (fn: () => unknown): void }, options: Record<string, unknown>) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  await app.register(chanx, options)
  app.get('/ws/rooms/:roomId', {
    websocket: true,
    messages: { chat: Type.Object({ text: Type.String(), at: Type.Optional(Type.String({ format: 'date-time' })) }) },
    handlers: { chat: () => undefined }
  } as never, () => {})
  await app.ready()
  return app
}

async function registerError (options: Record<string, unknown>): Promise<{ code?: string, message: string } | undefined> {
  const app = Fastify()
  await app.register(websocket)
  try {
    await app.register(chanx, options)
    await app.ready()
  } catch (err) {
    return err as { code?: string, message: string }
  } finally {
    await app.close()
  }
  return undefined
}

test('asyncapi.path serves the document as JSON and as YAML that parses to the same document', async (t) => {
  const app = await buildApp(t, { asyncapi: { path: '/docs/asyncapi', info: { title: 'Rooms', version: '1.2.3' } } })
  const json = await app.inject('/docs/asyncapi.json')
  t.equal(json.statusCode, 200)
  t.match(json.headers['content-type'], 'application/json')
  t.same(JSON.parse(json.body), app.chanx.asyncapi())
  const yaml = await app.inject('/docs/asyncapi.yaml')
  t.equal(yaml.statusCode, 200)
  t.match(yaml.headers['content-type'], 'application/yaml')
  t.match(yaml.body, /^asyncapi: 3\.0\.0\ninfo:\n {2}title: Rooms\n {2}version: 1\.2\.3\n/)
  t.match(yaml.body, '    address: "/ws/rooms/{roomId}"\n')
  const parser = new Parser()
  const fromYaml = await parser.parse(yaml.body)
  const fromJson = await parser.parse(json.body)
  t.same(fromYaml.diagnostics.filter((d) => d.severity <= 1), [], 'the YAML is a valid AsyncAPI 3.0 document')
  t.same(fromYaml.document?.json(), fromJson.document?.json(), 'YAML and JSON say the same')
})

test('the default path is /asyncapi; path: false serves nothing', async (t) => {
  const app = await buildApp(t, { asyncapi: {} })
  t.equal((await app.inject('/asyncapi.json')).statusCode, 200)
  t.equal((await app.inject('/asyncapi.yaml')).statusCode, 200)
  const quiet = await buildApp(t, { asyncapi: { path: false, info: { title: 'x', version: '1' } } })
  t.equal((await quiet.inject('/asyncapi.json')).statusCode, 404)
  t.equal(quiet.chanx.asyncapi().info.title, 'x')
})

test('nothing is served unless the asyncapi option is set, but app.chanx.asyncapi() works', async (t) => {
  const app = await buildApp(t, {})
  t.equal((await app.inject('/asyncapi.json')).statusCode, 404)
  t.equal((await app.inject('/asyncapi.yaml')).statusCode, 404)
  t.same(Object.keys(app.chanx.asyncapi().channels), ['ws_rooms_roomId'])
})

test('bad asyncapi options fail registration with FST_CHANX_INVALID_OPTION naming the option', async (t) => {
  const cases: Array<[unknown, string]> = [
    ['yes', 'fastify-chanx: option asyncapi must be an object { path?, info?: { title, version }, servers? }'],
    [{ path: 'asyncapi' }, 'fastify-chanx: option asyncapi.path must be a path such as "/asyncapi" (starting with "/", no trailing "/", no ":" params, "?" or "*")'],
    [{ path: '/docs/:id' }, 'fastify-chanx: option asyncapi.path must be a path such as "/asyncapi" (starting with "/", no trailing "/", no ":" params, "?" or "*")'],
    [{ info: { title: 'x' } }, 'fastify-chanx: option asyncapi.info must be { title: string, version: string, description?: string }'],
    [{ servers: { prod: { host: 'x' } } }, 'fastify-chanx: option asyncapi.servers.prod must be { host: string, protocol: string } under a name of letters, digits, ".", "-" or "_"'],
    [{ pth: '/x' }, 'fastify-chanx: option asyncapi has an unknown key "pth"; expected path, info or servers']
  ]
  for (const [value, message] of cases) {
    const err = await registerError({ asyncapi: value })
    t.equal(err?.code, 'FST_CHANX_INVALID_OPTION')
    t.equal(err?.message, message)
  }
})

test('servers are passed through into the document', async (t) => {
  const app = await buildApp(t, { asyncapi: { path: false, servers: { local: { host: '127.0.0.1:3000', protocol: 'ws' } } } })
  const document = app.chanx.asyncapi()
  t.same(document.servers, { local: { host: '127.0.0.1:3000', protocol: 'ws' } })
  t.same((await new Parser().validate(document as never)).filter((d) => d.severity <= 1), [])
})

test('toYaml quotes what YAML would read as something else', async (t) => {
  t.equal(toYaml({
    a: 'plain text', b: 'true', c: '1.5', d: '', e: 'a: b', f: '#x', g: 'line\nbreak', h: null, i: [], j: {}, k: [1, { l: 'm', n: [true] }], 'o p': 'No'
  }), [
    'a: plain text', 'b: "true"', 'c: "1.5"', 'd: ""', 'e: "a: b"', 'f: "#x"', 'g: "line\\nbreak"', 'h: null', 'i: []', 'j: {}',
    'k:', '  - 1', '  - l: m', '    "n":', '      - true', 'o p: "No"', ''
  ].join('\n'))
})
