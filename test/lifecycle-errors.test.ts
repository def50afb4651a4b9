import { test } from 'tap'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import WebSocket from 'ws'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import chanx, {
  AuthenticationFailed,
  AuthenticationResult,
  ChanxAuthenticator,
  NotAuthenticated,
  NotFound,
  PermissionDenied,
  type FastifyChanxOptions
} from '../plugin'
import { closeApp, connect } from '../plugin/testing'

const INTERNAL = {
  action: 'authentication',
  payload: { status_code: 500, status_text: 'Internal Server Error', data: { detail: 'Internal server error' } }
}

/** A Fastify whose error log lines are collected. */
function loggedApp () {
  const lines: Array<{ level: number, msg: string, err?: { message: string } }> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line))
      done()
    }
  })
  return { app: Fastify({ logger: { level: 'error', stream } }), lines }
}

async function socketApp (options: FastifyChanxOptions, rejectUpgrade = false) {
  const { app, lines } = loggedApp()
  await app.register(websocket)
  await app.register(chanx, options)
  app.get('/ws', { websocket: true, rejectUpgrade }, () => {})
  await app.ready()
  return { app, lines }
}

const throwingUserKey: FastifyChanxOptions = {
  authentication: [{ authenticate: () => ({ id: 1, name: 'ann', active: true }) }],
  // A userKey that throws for the user it is given (it is never called for an anonymous one).
  userKey: (user) => { throw new Error(`no key for ${JSON.stringify(user)}`) }
}

test('a userKey that throws refuses the socket with 500 / 4500 "Internal server error" and logs the error', async (t) => {
  const { app, lines } = await socketApp(throwingUserKey)
  t.teardown(() => closeApp(app))
  const client = await connect(app, '/ws')
  t.same(await client.receive(), INTERNAL)
  t.equal(await client.closed(), 4500)
  t.ok(lines.some((line) => line.msg.includes('userKey') && line.err?.message.includes('no key for')), 'the exception is logged')
})

test('a userKey that throws answers an HTTP 500 {"detail":"Internal server error"} with rejectUpgrade', async (t) => {
  const { app } = await socketApp(throwingUserKey, true)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => closeApp(app))
  const { port } = app.server.address() as AddressInfo
  const [status, body] = await new Promise<[number, string]>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
    ws.once('unexpected-response', (_request, response) => {
      let text = ''
      response.on('data', (chunk: Buffer) => { text += chunk.toString() })
      response.on('end', () => resolve([response.statusCode ?? 0, text]))
    })
    ws.once('error', reject)
  })
  t.equal(status, 500)
  t.same(JSON.parse(body), { detail: 'Internal server error' })
})

class BigIntResult extends ChanxAuthenticator {
  override async authenticate () {
    return new AuthenticationResult({ isAuthenticated: false, statusCode: 403, data: { detail: 'no', id: 10n } }) as never
  }
}

class CyclicResult extends ChanxAuthenticator {
  override async authenticate () {
    const data: Record<string, unknown> = { detail: 'OK' }
    data.self = data
    return new AuthenticationResult({ isAuthenticated: true, statusCode: 200, data }) as never
  }
}

test('result data that cannot be serialized (a BigInt, a cycle) is a logged 4500 "Internal server error"', async (t) => {
  for (const authenticatorClass of [BigIntResult, CyclicResult]) {
    const { app, lines } = await socketApp({ authenticatorClass })
    const client = await connect(app, '/ws')
    t.same(await client.receive(), INTERNAL, authenticatorClass.name)
    t.equal(await client.closed(), 4500)
    t.ok(lines.some((line) => line.msg.includes('pipeline')), 'logged')
    await closeApp(app)
  }
})

test('an HTTP refusal whose data cannot be serialized answers 500 {"detail":"Internal server error"}, not the serializer\'s message', async (t) => {
  const { app, lines } = loggedApp()
  await app.register(websocket)
  await app.register(chanx)
  app.get('/api', { authenticatorClass: BigIntResult }, async () => 'never')
  t.teardown(() => app.close())
  const response = await app.inject('/api')
  t.equal(response.statusCode, 500)
  t.same(response.json(), { detail: 'Internal server error' })
  t.ok(lines.length > 0, 'logged')
})

test('refusal errors thrown from a plain HTTP handler answer their own status with their detail', async (t) => {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx)
  app.get('/not-found', async () => { throw new NotFound() })
  app.get('/denied', async () => { throw new PermissionDenied() })
  app.get('/anonymous', async () => { throw new NotAuthenticated() })
  app.get('/bad', async () => { throw new AuthenticationFailed('Invalid token') })
  t.teardown(() => app.close())
  const expected: Array<[string, number, string, string]> = [
    ['/not-found', 404, 'FST_CHANX_NOT_FOUND', 'Not found.'],
    ['/denied', 403, 'FST_CHANX_PERMISSION_DENIED', 'You do not have permission to perform this action.'],
    ['/anonymous', 401, 'FST_CHANX_NOT_AUTHENTICATED', 'Authentication credentials were not provided.'],
    ['/bad', 401, 'FST_CHANX_AUTHENTICATION_FAILED', 'Invalid token']
  ]
  for (const [url, statusCode, code, message] of expected) {
    const response = await app.inject(url)
    t.equal(response.statusCode, statusCode, url)
    t.match(response.json(), { statusCode, code, message })
  }
})
