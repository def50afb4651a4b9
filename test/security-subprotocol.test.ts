import { test } from 'tap'
import type { AddressInfo } from 'node:net'
import type { IncomingMessage } from 'node:http'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx, { IsAuthenticated, jwtAuthentication } from '../plugin'
import { closeApp } from '../plugin/testing'

async function buildApp (handleProtocols?: (protocols: Set<string>) => string | false) {
  const app = Fastify()
  await app.register(jwt, { secret: 'a-subprotocol-secret-of-32-characters' })
  await app.register(websocket, handleProtocols === undefined ? {} : { options: { handleProtocols } })
  await app.register(chanx, { authentication: [jwtAuthentication({ protocol: 'bearer' })], permissions: [IsAuthenticated] })
  app.get('/ws', { websocket: true }, (socket) => socket.send(`protocol=${socket.protocol}`))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return { app, url: `ws://127.0.0.1:${port}/ws` }
}

interface Outcome { messages: string[], selected: string | undefined, code?: number, error?: string }

function handshake (url: string, protocols: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocols)
    const outcome: Outcome = { messages: [], selected: undefined }
    const timer = setTimeout(() => { ws.terminate(); resolve(outcome) }, 3000)
    ws.on('upgrade', (response: IncomingMessage) => { outcome.selected = response.headers['sec-websocket-protocol'] as string | undefined })
    ws.on('message', (data) => {
      outcome.messages.push(data.toString())
      if (outcome.messages.length === 2) ws.close(1000)
    })
    ws.on('close', (code) => { clearTimeout(timer); outcome.code = code; resolve(outcome) })
    ws.on('error', (error) => { outcome.error = error.message })
  })
}

test('a token carried as a Sec-WebSocket-Protocol value authenticates and is never echoed', async (t) => {
  const { app, url } = await buildApp()
  t.teardown(() => closeApp(app))
  const token = app.jwt.sign({ sub: 'alice' })
  const outcome = await handshake(url, ['chanx', `bearer.${token}`])
  t.equal(outcome.selected, 'chanx', 'the plain protocol is selected')
  t.same(outcome.messages, [
    '{"action":"authentication","payload":{"status_code":200,"status_text":"OK","data":{"detail":"OK"}}}',
    'protocol=chanx'
  ])
})

test('a token offered first is still not selected', async (t) => {
  const { app, url } = await buildApp()
  t.teardown(() => closeApp(app))
  const outcome = await handshake(url, [`bearer.${app.jwt.sign({ sub: 'alice' })}`, 'chanx'])
  t.equal(outcome.selected, 'chanx')
})

test('a token offered alone is never echoed: the response selects no protocol', async (t) => {
  const { app, url } = await buildApp()
  t.teardown(() => closeApp(app))
  const outcome = await handshake(url, [`bearer.${app.jwt.sign({ sub: 'alice' })}`])
  t.equal(outcome.selected, undefined)
  t.match(outcome.error, /no subprotocol/, 'a client that offered only the token sees the handshake fail')
})

test('a bad token in the subprotocol is refused with 4401', async (t) => {
  const { app, url } = await buildApp()
  t.teardown(() => closeApp(app))
  const outcome = await handshake(url, ['chanx', 'bearer.not-a-jwt'])
  t.equal(outcome.code, 4401)
  t.match(outcome.messages[0], /"detail":"Invalid token"/)
})

test("the app's own handleProtocols sees only the protocols without credentials", async (t) => {
  const seen: string[][] = []
  const { app, url } = await buildApp((protocols) => {
    seen.push([...protocols])
    return [...protocols].find((p) => p.startsWith('bearer.')) ?? [...protocols].at(-1) ?? false
  })
  t.teardown(() => closeApp(app))
  const outcome = await handshake(url, ['v1', `bearer.${app.jwt.sign({ sub: 'alice' })}`, 'v2'])
  t.same(seen, [['v1', 'v2']])
  t.equal(outcome.selected, 'v2')
})
