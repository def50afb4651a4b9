import { test } from 'tap'
import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import chanx, { IsAuthenticated, jwtAuthentication } from '../plugin'
import { redactUrl } from '../plugin/handshake/redaction'
import { closeApp } from '../plugin/testing'

function logSink () {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(chunk.toString()); done() } })
  return { lines, stream }
}

function openAndClose (url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('no close within 3 s')) }, 3000)
    ws.on('message', () => ws.close(1000))
    ws.on('close', (code) => { clearTimeout(timer); resolve(code) })
    ws.on('error', reject)
  })
}

test('a query token is kept out of the socket route log lines', async (t) => {
  const { lines, stream } = logSink()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(jwt, { secret: 'a-redaction-secret-of-32-characters!' })
  await app.register(websocket)
  await app.register(chanx, {
    authentication: [jwtAuthentication({ query: 'access_token' })],
    permissions: [IsAuthenticated],
    redactQueryParams: ['api_key']
  })
  app.get('/ws', { websocket: true }, (socket) => socket.send('in'))
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => closeApp(app))
  const { port } = app.server.address() as AddressInfo

  const token = app.jwt.sign({ sub: 'alice' })
  await openAndClose(`ws://127.0.0.1:${port}/ws?access_token=${token}&token=other-secret&api_key=k3y&room=lobby`)
  await openAndClose(`ws://127.0.0.1:${port}/ws`, { authorization: `Bearer ${token}`, cookie: 'sessionId=cookie-secret' })

  const log = lines.join('')
  t.notMatch(log, token, 'the JWT is never logged')
  t.notMatch(log, 'other-secret', '"token" is always redacted')
  t.notMatch(log, 'k3y', 'configured names are redacted')
  t.notMatch(log, 'cookie-secret', 'cookies are never logged')
  t.match(log, '/ws?access_token=[REDACTED]&token=[REDACTED]&api_key=[REDACTED]&room=lobby', 'the rest of the URL stays readable')
})

test('redactUrl replaces only the named parameters, encoded names included', async (t) => {
  const names = new Set(['token'])
  t.equal(redactUrl('/ws', names), '/ws')
  t.equal(redactUrl('/ws?room=1', names), '/ws?room=1')
  t.equal(redactUrl('/ws?token=abc&room=1', names), '/ws?token=[REDACTED]&room=1')
  t.equal(redactUrl('/ws?to%6Ben=abc', names), '/ws?to%6Ben=[REDACTED]')
  t.equal(redactUrl('/ws?token', names), '/ws?token=[REDACTED]')
  t.equal(redactUrl('/ws?%E0%A4%A=1&token=x', names), '/ws?%E0%A4%A=1&token=[REDACTED]')
})

test('chanx_recover is redacted in the log line of the HEAD twin of a route that sets history: true itself', async (t) => {
  const { lines, stream } = logSink()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(websocket)
  await app.register(chanx)
  app.get('/ws', { websocket: true, history: true }, (socket) => socket.send('in'))
  await app.ready()
  t.teardown(() => closeApp(app))

  const head = await app.inject({ method: 'HEAD', url: '/ws?chanx_recover=resume-secret&room=lobby' })
  t.equal(head.statusCode, 404, 'the twin answers (no handler for plain HTTP) and logs its URL')
  const log = lines.join('')
  t.match(log, '/ws?chanx_recover=[REDACTED]&room=lobby', 'the twin\'s URL is logged, redacted')
  t.notMatch(log, 'resume-secret', 'the resume token is never logged')
})
