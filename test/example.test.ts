import { test } from 'tap'
import WebSocket from 'ws'
import { startExample } from './helpers/child-app'

/** Starts the example as `npm run example` does, on a free port and an in-memory database. */
async function login (host: string, username: string): Promise<{ cookies: string, token: string }> {
  const response = await fetch(`http://${host}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: username })
  })
  if (response.status !== 200) throw new Error(`login as ${username}: ${response.status}`)
  const cookies = response.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ')
  return { cookies, token: (await response.json() as { token: string }).token }
}

class Socket {
  readonly messages: Array<Record<string, unknown>> = []
  code: number | null = null
  private constructor (readonly ws: WebSocket) {
    ws.on('message', (data) => this.messages.push(JSON.parse(data.toString()) as Record<string, unknown>))
    ws.on('close', (code) => { this.code = code })
  }

  static open (url: string, headers: Record<string, string> = {}): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = new Socket(new WebSocket(url, { headers }))
      socket.ws.once('message', () => resolve(socket))
      socket.ws.once('error', reject)
    })
  }

  async until (predicate: () => boolean, within = 3000): Promise<void> {
    const deadline = Date.now() + within
    while (!predicate() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

test('the example chat: REST and sockets share one set of rules, and messages reach the room', async (t) => {
  const host = (await startExample(t)).replace('http://', '')
  const alice = await login(host, 'alice')
  const carol = await login(host, 'carol')

  const failed = await fetch(`http://${host}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"username":"alice","password":"nope"}' })
  t.equal(failed.status, 401)

  const secretByRest = await fetch(`http://${host}/api/rooms/secret`, { headers: { cookie: carol.cookies } })
  t.equal(secretByRest.status, 403)
  t.same(await secretByRest.json(), { detail: 'You are not a member of this room.' })

  const aliceSocket = await Socket.open(`ws://${host}/ws/rooms/lobby`, { cookie: alice.cookies })
  const carolSocket = await Socket.open(`ws://${host}/ws/rooms/lobby?token=${carol.token}`)
  t.teardown(() => { aliceSocket.ws.terminate(); carolSocket.ws.terminate() })
  t.same(aliceSocket.messages[0], { action: 'authentication', payload: { status_code: 200, status_text: 'OK', data: { detail: 'OK' } } })

  aliceSocket.ws.send(JSON.stringify({ action: 'chat', payload: { text: 'hello lobby' } }))
  await carolSocket.until(() => carolSocket.messages.length >= 2)
  await aliceSocket.until(() => aliceSocket.messages.length >= 2)
  t.match(carolSocket.messages[1], { action: 'chat', payload: { username: 'alice', text: 'hello lobby' }, is_mine: false, is_current: false })
  t.match(aliceSocket.messages[1], { action: 'chat', payload: { username: 'alice', text: 'hello lobby' }, is_mine: true, is_current: true })

  const posted = await fetch(`http://${host}/api/rooms/lobby/messages`, {
    method: 'POST', headers: { 'content-type': 'application/json', cookie: carol.cookies }, body: '{"text":"over REST"}'
  })
  t.equal(posted.status, 201)
  await aliceSocket.until(() => aliceSocket.messages.length >= 3)
  t.match(aliceSocket.messages[2], { action: 'chat', payload: { username: 'carol', text: 'over REST' } })

  carolSocket.ws.send(JSON.stringify({ action: 'history', payload: { limit: 10 } }))
  await carolSocket.until(() => carolSocket.messages.some((m) => m.action === 'history'))
  const history = carolSocket.messages.find((m) => m.action === 'history') as { payload: { messages: Array<{ text: string }> } }
  t.same(history.payload.messages.map((m) => m.text), ['hello lobby', 'over REST'], 'messages are stored in SQLite')

  carolSocket.ws.send(JSON.stringify({ action: 'chat', payload: { text: '' } }))
  await carolSocket.until(() => carolSocket.messages.some((m) => m.action === 'error'))
  t.match(carolSocket.messages.find((m) => m.action === 'error'), { payload: [{ type: 'string_too_short', loc: ['chat', 'payload', 'text'] }] })

  const outsider = await Socket.open(`ws://${host}/ws/rooms/secret`, { cookie: carol.cookies })
  await outsider.until(() => outsider.code !== null)
  t.same(outsider.messages, [{ action: 'authentication', payload: { status_code: 403, status_text: 'Forbidden', data: { detail: 'You are not a member of this room.' } } }])
  t.equal(outsider.code, 4403)

  const anonymous = await Socket.open(`ws://${host}/ws/rooms/lobby`)
  await anonymous.until(() => anonymous.code !== null)
  t.equal(anonymous.code, 4403)

  const loggedOut = await fetch(`http://${host}/logout`, { method: 'POST', headers: { cookie: alice.cookies, 'content-type': 'application/json' }, body: '{}' })
  t.equal(loggedOut.status, 200)
  await aliceSocket.until(() => aliceSocket.code !== null)
  t.equal(aliceSocket.code, 4401, 'logging out closes the user\'s sockets')
  // The session is destroyed; a JWT stays valid until it expires (a browser drops its cleared cookie).
  const sessionOnly = alice.cookies.split('; ').filter((c) => c.startsWith('sessionId=')).join('; ')
  const afterLogout = await fetch(`http://${host}/me`, { headers: { cookie: sessionOnly } })
  t.equal(afterLogout.status, 403, 'the session is gone')
})

test('the example serves Prometheus metrics made from the diagnostics channels: after a chat, /metrics counts it', async (t) => {
  const host = (await startExample(t)).replace('http://', '')
  const alice = await login(host, 'alice')
  const carol = await login(host, 'carol')
  const refused = await Socket.open(`ws://${host}/ws/rooms/lobby`)
  await refused.until(() => refused.code !== null)
  const aliceSocket = await Socket.open(`ws://${host}/ws/rooms/lobby`, { cookie: alice.cookies })
  const carolSocket = await Socket.open(`ws://${host}/ws/rooms/lobby?token=${carol.token}`)
  t.teardown(() => { aliceSocket.ws.terminate(); carolSocket.ws.terminate() })
  aliceSocket.ws.send(JSON.stringify({ action: 'chat', payload: { text: 'counted' } }))
  aliceSocket.ws.send(JSON.stringify({ action: 'chat', payload: {} }))
  aliceSocket.ws.send(JSON.stringify({ action: 'no-such-action', payload: null }))
  await carolSocket.until(() => carolSocket.messages.length >= 2)
  await aliceSocket.until(() => aliceSocket.messages.length >= 4)

  const response = await fetch(`http://${host}/metrics`)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const text = await response.text()
  const value = (series: string): number | undefined => {
    const line = text.split('\n').find((l) => l.startsWith(series + ' '))
    return line === undefined ? undefined : Number(line.slice(series.length + 1))
  }
  t.equal(value('chanx_connections_open{route="/ws/rooms/:roomId"}'), 2, 'two sockets open')
  t.equal(value('chanx_handshakes_total{route="/ws/rooms/:roomId",status="200"}'), 2)
  t.equal(value('chanx_handshakes_total{route="/ws/rooms/:roomId",status="403"}'), 1, 'the anonymous socket refused')
  t.equal(value('chanx_frames_total{route="/ws/rooms/:roomId",action="chat",outcome="handled"}'), 1)
  t.equal(value('chanx_frames_total{route="/ws/rooms/:roomId",action="chat",outcome="validation_error"}'), 1)
  t.equal(value('chanx_frames_total{route="/ws/rooms/:roomId",action="",outcome="unknown_action"}'), 1, 'a client-chosen action is not a label')
  t.equal(value('chanx_broadcasts_total{outcome="ok"}'), 1)
  t.equal(value('chanx_broadcast_deliveries_total'), 2, 'alice and carol each got a copy')
  t.equal(value('chanx_broadcast_duration_seconds_count'), 1)
})
