import { test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startChildApp } from './helpers/child-app'

const root = join(__dirname, '..')

test('the README quick start is example/quickstart.ts, verbatim', async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Quick start'))
  const block = /```ts\n([\s\S]*?)```/.exec(section)
  t.ok(block, 'the quick start has a ts code block')
  t.equal(block![1], readFileSync(join(root, 'example/quickstart.ts'), 'utf8'))
})

function collect (url: string, send?: string): Promise<{ messages: string[], code: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const messages: string[] = []
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('no close within 5 s')) }, 5000)
    ws.on('message', (data) => {
      messages.push(data.toString())
      if (messages.length === 1 && send !== undefined) ws.send(send)
      if (messages.length === 2) ws.close(1000)
    })
    ws.on('close', (code) => { clearTimeout(timer); resolve({ messages, code }) })
    ws.on('error', reject)
  })
}

test('the quick start runs as written', async (t) => {
  const port = new URL(await startChildApp(t, 'example/quickstart.ts')).port
  const { token } = await (await fetch(`http://127.0.0.1:${port}/token`)).json() as { token: string }
  const member = await collect(`ws://127.0.0.1:${port}/ws/echo?token=${token}`, 'hi')
  t.equal(member.messages[0], '{"action":"authentication","payload":{"status_code":200,"status_text":"OK","data":{"detail":"OK"}}}')
  t.match(JSON.parse(member.messages[1]!), { user: { sub: 'alice' }, echo: 'hi' })

  const anonymous = await collect(`ws://127.0.0.1:${port}/ws/echo`)
  t.same(anonymous.messages, ['{"action":"authentication","payload":{"status_code":401,"status_text":"Unauthorized","data":{"detail":"Authentication credentials were not provided."}}}'])
  t.equal(anonymous.code, 4401)
})
