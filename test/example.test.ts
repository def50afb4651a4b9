import { test } from 'tap'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { buildApp } from '../example/server'

interface Conversation {
  messages: string[]
  code: number
}

/** Opens a real socket, sends `send` once authenticated, and collects every message until the close. */
function converse (url: string, headers: Record<string, string>, send?: string): Promise<Conversation> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    const messages: string[] = []
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('no close within 5 s')) }, 5000)
    ws.on('message', (data) => {
      messages.push(data.toString())
      if (send !== undefined && messages.length === 2) ws.send(send)
      if (send !== undefined && messages.length === 3) ws.close(1000)
    })
    ws.on('close', (code) => { clearTimeout(timer); resolve({ messages, code }) })
    ws.on('error', reject)
  })
}

test('the example app guards its REST route and its socket with the same rules', async (t) => {
  process.env.LOG_LEVEL = 'silent'
  const app = await buildApp()
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo

  const login = await app.inject({ method: 'POST', url: '/login', payload: { username: 'carol', password: 'carol' } })
  t.equal(login.statusCode, 200)
  const cookies = login.cookies.map((c) => `${c.name}=${c.value}`).join('; ')
  const token = login.json().token as string

  const lobby = await app.inject({ url: '/api/rooms/lobby', headers: { cookie: cookies } })
  t.same(lobby.json(), { id: 'lobby', name: 'Lobby', you: 'carol' })
  const secret = await app.inject({ url: '/api/rooms/secret', headers: { cookie: cookies } })
  t.equal(secret.statusCode, 403)
  t.same(secret.json(), { detail: 'You are not a member of this room.' })

  const member = await converse(`ws://127.0.0.1:${port}/ws/rooms/lobby`, { cookie: cookies }, 'hi')
  t.same(member.messages, [
    '{"action":"authentication","payload":{"status_code":200,"status_text":"OK","data":{"detail":"OK"}}}',
    '{"action":"welcome","payload":{"room":"Lobby","user":"carol"}}',
    '{"action":"echo","payload":{"from":"carol","text":"hi"}}'
  ])

  const byToken = await converse(`ws://127.0.0.1:${port}/ws/rooms/lobby?token=${token}`, {}, 'hey')
  t.equal(byToken.messages[1], '{"action":"welcome","payload":{"room":"Lobby","user":"carol"}}')

  const outsider = await converse(`ws://127.0.0.1:${port}/ws/rooms/secret`, { cookie: cookies })
  t.same(outsider.messages, [
    '{"action":"authentication","payload":{"status_code":403,"status_text":"Forbidden","data":{"detail":"You are not a member of this room."}}}'
  ])
  t.equal(outsider.code, 4403)

  const anonymous = await converse(`ws://127.0.0.1:${port}/ws/rooms/lobby`, {})
  t.equal(anonymous.code, 4403)
  t.match(anonymous.messages[0], /Authentication credentials were not provided\./)
})
