import { test } from 'tap'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import WebSocket from 'ws'

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
  // Started as `npm run example` starts it, on a free port.
  const child = spawn(process.execPath, ['--import', 'tsx', 'example/server.ts'], {
    cwd: join(__dirname, '..'),
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill() })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the example did not listen within 20 s')), 20_000)
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const match = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      if (match) { clearTimeout(timer); resolve(Number(match[1])) }
    })
    child.on('exit', (code) => reject(new Error(`the example exited with ${code}`)))
  })
  const base = `http://127.0.0.1:${port}`

  const login = await fetch(`${base}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'carol', password: 'carol' })
  })
  t.equal(login.status, 200)
  const cookies = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ')
  const token = (await login.json() as { token: string }).token

  const lobby = await fetch(`${base}/api/rooms/lobby`, { headers: { cookie: cookies } })
  t.same(await lobby.json(), { id: 'lobby', name: 'Lobby', you: 'carol' })
  const secret = await fetch(`${base}/api/rooms/secret`, { headers: { cookie: cookies } })
  t.equal(secret.status, 403)
  t.same(await secret.json(), { detail: 'You are not a member of this room.' })

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
