import { test } from 'tap'
import { Type as T034 } from '@sinclair/typebox'
import { Type as T1 } from 'typebox'
import { defineSocketRoute } from '../plugin'
import { AUTH_OK, open, socketApp } from './helpers/router-client'

const LINES = [
  ['@sinclair/typebox 0.34', T034.Object({ n: T034.Integer(), m: T034.Optional(T034.Integer({ minimum: 0, maximum: 10 })), x: T034.Optional(T034.Number()) })],
  ['typebox 1.x', T1.Object({ n: T1.Integer(), m: T1.Optional(T1.Integer({ minimum: 0, maximum: 10 })), x: T1.Optional(T1.Number()) })]
] as const

/** The error list of a refused frame; typebox 1.x errors keep typebox's own English in `msg` (docs/messages.md). */
function refusal (frame: string): { type: string, loc: unknown[], msg: string } {
  const parsed = JSON.parse(frame) as { action: string, payload: Array<{ type: string, loc: unknown[], msg: string }> }
  if (parsed.action !== 'error' || parsed.payload.length !== 1) throw new Error(`expected one error, got ${frame}`)
  return parsed.payload[0]!
}

for (const [line, schema] of LINES) {
  for (const strict of [false, true]) {
    test(`an integer outside the safe range is refused, never silently changed (${line}, ${strict ? 'strict' : 'lax'})`, async (t) => {
      const app = await socketApp(t, { chanx: { strict } })
      const seen: unknown[] = []
      app.route(defineSocketRoute({
        url: '/ws',
        messages: { take: schema },
        handlers: { take: (message) => { seen.push(message.payload); return { action: 'took', payload: message.payload } } }
      }))
      await app.ready()
      const client = await open(app, '/ws')
      t.equal(await client.next(), AUTH_OK)

      // JSON.parse reads 9007199254740995 as 9007199254740996: the handler would act on another number.
      client.send('{"action":"take","payload":{"n":9007199254740995}}')
      const tooBig = refusal(await client.next())
      t.match(tooBig, { type: 'less_than_equal', loc: ['take', 'payload', 'n'], msg: / 9007199254740991$/ })
      if (line.startsWith('@sinclair')) t.equal(tooBig.msg, 'Input should be less than or equal to 9007199254740991')
      client.send('{"action":"take","payload":{"n":-9007199254740995}}')
      t.match(refusal(await client.next()), { type: 'greater_than_equal', loc: ['take', 'payload', 'n'], msg: / -9007199254740991$/ })
      client.send('{"action":"take","payload":{"n":1e300}}')
      t.match(refusal(await client.next()), { type: 'less_than_equal', loc: ['take', 'payload', 'n'] })

      // The edges of the safe range pass, and a declared tighter bound keeps its own message.
      client.send('{"action":"take","payload":{"n":9007199254740991}}')
      t.equal(await client.next(), '{"action":"took","payload":{"n":9007199254740991}}')
      client.send('{"action":"take","payload":{"n":-9007199254740991,"m":10}}')
      t.equal(await client.next(), '{"action":"took","payload":{"n":-9007199254740991,"m":10}}')
      client.send('{"action":"take","payload":{"n":1,"m":11}}')
      t.match(refusal(await client.next()), { type: 'less_than_equal', loc: ['take', 'payload', 'm'], msg: / 10$/ })

      // A float field is an approximation by contract: a large literal is the nearest double (documented).
      client.send('{"action":"take","payload":{"n":1,"x":9007199254740995}}')
      t.equal(await client.next(), '{"action":"took","payload":{"n":1,"x":9007199254740996}}')
      t.equal(client.closeCode, null, 'the connection stays open')
      t.equal(seen.length, 3, 'no refused frame reached the handler')
    })
  }
}

test('the string form of an unsafe integer stays refused with int_parsing (lax)', async (t) => {
  const app = await socketApp(t)
  app.route(defineSocketRoute({ url: '/ws', messages: { take: T034.Integer() }, handlers: { take: (message) => ({ action: 'took', payload: message.payload }) } }))
  await app.ready()
  const client = await open(app, '/ws')
  await client.next()
  client.send('{"action":"take","payload":"9007199254740995"}')
  t.equal(await client.next(), '{"action":"error","payload":[{"type":"int_parsing","loc":["take","payload"],"msg":"Input should be a valid integer, unable to parse string as an integer"}]}')
  client.send('{"action":"take","payload":"42"}')
  t.equal(await client.next(), '{"action":"took","payload":42}')
})
