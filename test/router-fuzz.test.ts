import { test } from 'tap'
import { Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { defineSocketRoute } from '../plugin'
import { AUTH_OK, open, socketApp } from './helpers/router-client'

const Chat = Type.Object({ text: Type.String({ maxLength: 100 }), tags: Type.Optional(Type.Array(Type.String(), { maxItems: 5 })) })
const Move = Type.Object({ x: Type.Integer(), y: Type.Integer() }, { additionalProperties: false })

/** A small seeded PRNG (mulberry32), so a failure replays. */
function random (seed: number): () => number {
  return () => {
    seed |= 0
    seed = seed + 0x6D2B79F5 | 0
    let x = Math.imul(seed ^ seed >>> 15, 1 | seed)
    x = x + Math.imul(x ^ x >>> 7, 61 | x) ^ x
    return ((x ^ x >>> 14) >>> 0) / 4294967296
  }
}

function hostileFrames (count: number, rand: () => number): Array<string | Buffer> {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T
  const int = (n: number): number => Math.floor(rand() * n)
  const values: unknown[] = [null, true, 0, -1, 1.5, 1e308, '', 'x', [], {}, [1, 'a'], { text: 1 }, 'x'.repeat(200)]
  const makers: Array<() => string | Buffer> = [
    () => Buffer.from(Array.from({ length: int(64) }, () => int(256))),
    () => Array.from({ length: int(64) }, () => String.fromCharCode(32 + int(95))).join(''),
    () => '['.repeat(50 + int(20000)) + ']'.repeat(int(10)),
    () => '{"action":"chat","payload":' + '{"a":'.repeat(60 + int(200)) + '1' + '}'.repeat(60 + int(200)) + '}',
    () => JSON.stringify({ action: 'chat', payload: { text: 'x'.repeat(int(60000)) } }),
    () => JSON.stringify({ action: 'chat', payload: { text: pick(values) } }),
    () => JSON.stringify({ action: 'move', payload: { x: pick(values), y: pick(values) } }),
    () => JSON.stringify({ action: 'move', payload: { x: 1, y: 2, extra: pick(values) } }),
    () => JSON.stringify({ action: pick(values), payload: { text: 'hi' } }),
    () => JSON.stringify({ payload: { text: 'hi' } }),
    () => JSON.stringify(pick(values)),
    () => '{"action":"chat","payload":{"text":"a","__proto__":{"polluted":true}}}',
    () => '{"__proto__":{"polluted":true},"action":"chat","payload":{"text":"b"}}',
    () => '{"action":"chat","payload":{"text":"c","\\u005f_proto__":{"polluted":true}}}',
    () => '{"action":"move","payload":{"x":1,"y":2,"constructor":{"prototype":{"polluted":true}}}}',
    () => '{"action":"constructor","payload":null}',
    () => '{"action":"__proto__","payload":null}',
    () => '{"action":"toString","payload":null}',
    () => '{"action":"hasOwnProperty","payload":null}',
    // Actions whose String() throws: quoting them in the error must not.
    () => '{"action":{"toString":1},"payload":null}',
    () => '{"action":{"valueOf":1,"toString":1},"payload":null}',
    () => '{"action":[{"toString":1}],"payload":null}',
    () => JSON.stringify({ action: 'chat', payload: { text: 'ok', tags: Array.from({ length: int(10) }, () => pick(values)) } }),
    () => JSON.stringify({ action: 'chat', payload: { text: 'ok' } }).slice(0, int(40)),
    () => '"' + '\\'.repeat(int(100)) + '"'
  ]
  return Array.from({ length: count }, () => pick(makers)())
}

test('thousands of hostile frames: no crash, no handler sees rejected data, no pollution, the connection survives', async (t) => {
  const violations: unknown[] = []
  let handled = 0
  // The flood itself is the rate limiter's concern (test/security-flood.test.ts); here every frame must be parsed.
  const app = await socketApp(t, { chanx: { rateLimit: false } })
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { chat: Chat, move: Move },
    handlers: {
      chat: (message) => {
        handled++
        if (!Value.Check(Chat, message.payload) || Object.prototype.hasOwnProperty.call(message.payload, '__proto__')) violations.push(message)
        // A careless handler that merges client data must not pollute anything either.
        const merged: Record<string, unknown> = Object.assign({}, message.payload)
        if (merged.polluted !== undefined) violations.push(merged)
        return { action: 'chat', payload: { length: message.payload.text.length } }
      },
      move: (message) => {
        handled++
        if (!Value.Check(Move, message.payload)) violations.push(message)
        return { action: 'moved', payload: message.payload.x + message.payload.y }
      }
    }
  }))
  await app.ready()
  const client = await open(app, '/ws')
  t.equal(await client.next(), AUTH_OK)

  const frames = hostileFrames(3000, random(20261129))
  for (const frame of frames) client.send(frame)
  const replies = await client.take(frames.length, 20000)
  client.send({ action: 'ping', payload: null })
  t.equal(await client.next(), '{"action":"pong","payload":null}', 'ping still pongs at the end')

  t.same(violations, [], 'no handler saw data its schema rejects')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is not polluted')
  t.equal((Object.prototype as Record<string, unknown>).polluted, undefined)
  t.ok(handled > 100, `handlers ran for the valid frames (${handled})`)
  t.equal(client.closeCode, null, 'the connection is still open')
  const longest = Math.max(...replies.map((reply) => {
    const message = JSON.parse(reply) as { action: string, payload: unknown }
    return message.action === 'error' && Array.isArray(message.payload) ? message.payload.length : 0
  }))
  t.ok(longest <= 20, `error lists are bounded (longest ${longest})`)
  t.ok(replies.every((reply) => reply.length < 10000), 'no reply echoes a huge frame back')
})

test('hostile frames over maxPayload close with 1009 and crash nothing', async (t) => {
  const app = await socketApp(t)
  app.route(defineSocketRoute({ url: '/ws', messages: { chat: Chat }, handlers: { chat: () => undefined } }))
  await app.ready()
  for (const frame of ['['.repeat(70000), JSON.stringify({ action: 'chat', payload: { text: 'x'.repeat(70000) } }), Buffer.alloc(70000)]) {
    const client = await open(app, '/ws')
    await client.next()
    client.send(frame)
    t.equal(await client.closed(), 1009)
  }
})
