import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import chanx from '../plugin'

async function buildApp (t: { teardown (fn: () => unknown): void }, options: Record<string, unknown>) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  await app.register(chanx, options)
  app.get('/ws', { websocket: true }, () => {})
  await app.ready()
  return app
}

test('the playground is off by default', async (t) => {
  const app = await buildApp(t, {})
  t.equal((await app.inject('/chanx/playground')).statusCode, 404)
  t.equal((await app.inject('/chanx/playground/asyncapi.json')).statusCode, 404)
  t.equal((await app.inject('/chanx/playground/playground.js')).statusCode, 404)
})

test('playground.path serves the page, its script, its style and the document, all from this host', async (t) => {
  const app = await buildApp(t, { playground: { path: '/tools/sockets' } })
  const page = await app.inject('/tools/sockets')
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], 'text/html')
  t.match(page.headers['content-security-policy'], "default-src 'none'; script-src 'self'")
  t.match(page.body, '<script src="/tools/sockets/playground.js"></script>')
  t.match(page.body, 'data-document="/tools/sockets/asyncapi.json"')
  t.notMatch(page.body, /(src|href)="(https?:)?\/\//, 'nothing loaded from another host')
  const script = await app.inject('/tools/sockets/playground.js')
  t.equal(script.statusCode, 200)
  t.match(script.headers['content-type'], 'text/javascript')
  t.notMatch(script.body, /(fetch|import|WebSocket)\(\s*['"`]/, 'the script connects to no literal URL')
  t.match(script.body, 'location.host + path', 'sockets go to the page\'s own host')
  t.equal((await app.inject('/tools/sockets/playground.css')).statusCode, 200)
  const document = await app.inject('/tools/sockets/asyncapi.json')
  t.same(JSON.parse(document.body), app.chanx.asyncapi())
})

test('playground: true uses /chanx/playground', async (t) => {
  const app = await buildApp(t, { playground: true })
  t.equal((await app.inject('/chanx/playground')).statusCode, 200)
})

test('bad playground options fail registration naming the option', async (t) => {
  const cases: Array<[unknown, string]> = [
    ['on', 'fastify-chanx: option playground must be { path?: string }, true or false'],
    [{ path: '/x/' }, 'fastify-chanx: option playground.path must be a path such as "/asyncapi" (starting with "/", no trailing "/", no ":" params, "?" or "*")'],
    [{ route: '/x' }, 'fastify-chanx: option playground has an unknown key "route"; expected path']
  ]
  for (const [value, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(websocket)
    const err = await app.register(chanx, { playground: value } as never).ready().then(() => undefined, (e: { code: string, message: string }) => e)
    t.equal(err?.code, 'FST_CHANX_INVALID_OPTION')
    t.equal(err?.message, message)
  }
})
