import { test } from 'tap'
import { WebSocket } from 'ws'
import { createClient, type WebSocketConstructor, type WebSocketLike } from '../plugin/client'
import { authenticated, resumeOf, startScripted } from './helpers/scripted-server'

const SEED = 0x26c11e47
const FRAMES = 10_000

/** mulberry32: a seeded generator, so a failure replays exactly. */
function generator (seed: number) {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number) => Math.floor(next() * n)
  const pick = <T>(list: readonly T[]): T => list[int(list.length)]!
  return { next, int, pick }
}

const PROTO_KEYS = ['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', 'prototype', 'then']
const KEYS = ['action', 'payload', 'id', 'chanx_pos', 'chanx_upos', 'chanx_recovery', 'is_mine', 'is_current', 'status_code',
  'status_text', 'data', 'detail', 'token', 'positions', 'user_position', 'recovered', 'reason', 'failed', 'user_failed', 'room', ...PROTO_KEYS]
const ACTIONS = ['authentication', 'error', 'complete', 'pong', 'echo', 'chat', '', ...PROTO_KEYS]
const CHARS = '{}[]":,\\ abcdeé€\u0000\ud83d\ude00\ud800nulltrue0123456789.-eE'

type Kind = 'text' | 'truncated' | 'wrong type' | 'hostile message' | 'hostile authentication' | 'prototype keys' | 'binary' | 'huge'

/** The hostile frames: random text, truncated JSON, wrong types, prototype keys and huge values, seeded. */
function hostileFrames (seed: number, count: number): Array<{ kind: Kind, data: string | Buffer }> {
  const { next, int, pick } = generator(seed)
  const randomText = (max: number) => { let s = ''; for (let i = int(max); i > 0; i--) s += pick([...CHARS]); return s }
  const value = (depth: number): unknown => {
    switch (int(depth > 3 ? 6 : 10)) {
      case 0: return null
      case 1: return next() < 0.5
      case 2: return pick([0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 2, -0, 200, 401, 4401, int(1000)])
      case 3: return pick([randomText(20), ...KEYS, ...ACTIONS])
      case 4: return [int(100), randomText(6)]
      case 5: return pick([[], {}, [randomText(4), int(9)], [int(9)], [int(9), 'e', 'x']])
      case 6: return Array.from({ length: int(4) }, () => value(depth + 1))
      default: return object(depth + 1)
    }
  }
  const object = (depth: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {}
    // Computed keys make own properties, __proto__ included.
    for (let i = int(5); i > 0; i--) out[pick(KEYS)] = value(depth)
    return out
  }
  const message = (): Record<string, unknown> => ({ action: pick(ACTIONS), ...object(1) })
  const authentication = (): Record<string, unknown> => {
    const recovery = next() < 0.5
      ? value(1)
      : { token: value(3), positions: next() < 0.5 ? value(2) : { room: value(3), [pick(PROTO_KEYS)]: value(3) }, user_position: value(3), recovered: value(3), reason: value(3), failed: value(2), user_failed: value(3) }
    const payload = next() < 0.3 ? value(1) : { status_code: pick([200, 200, 403, '200', null, 0, -1, 1e308]), status_text: value(3), data: next() < 0.5 ? value(2) : { detail: value(3) } }
    return { action: 'authentication', payload, chanx_recovery: recovery }
  }
  const frames: Array<{ kind: Kind, data: string | Buffer }> = []
  for (let i = 0; i < count; i++) {
    const roll = int(100)
    if (roll === 0) {
      frames.push({
        kind: 'huge',
        data: pick([
          JSON.stringify({ action: 'chat', payload: 'x'.repeat(256 * 1024) }),
          '['.repeat(100_000) + ']'.repeat(100_000),
          '{"action":"chat","chanx_pos":' + '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_001),
          JSON.stringify({ action: 'authentication', payload: { status_code: 200 }, chanx_recovery: { token: 't', positions: Object.fromEntries(Array.from({ length: 20_000 }, (_v, j) => ['g' + j, [j, 'e']])) } }),
          JSON.stringify(Array.from({ length: 100_000 }, (_v, j) => j))
        ])
      })
    } else if (roll < 12) frames.push({ kind: 'text', data: randomText(200) })
    else if (roll < 24) {
      const whole = JSON.stringify(next() < 0.5 ? message() : authentication())
      frames.push({ kind: 'truncated', data: whole.slice(0, int(whole.length)) })
    } else if (roll < 34) frames.push({ kind: 'wrong type', data: JSON.stringify(value(4)) ?? 'undefined' })
    else if (roll < 60) frames.push({ kind: 'hostile message', data: JSON.stringify(message()) })
    else if (roll < 84) frames.push({ kind: 'hostile authentication', data: JSON.stringify(authentication()) })
    else if (roll < 94) {
      const key = pick(PROTO_KEYS)
      frames.push({ kind: 'prototype keys', data: pick([`{"${key}":{"action":"authentication"}}`, `{"action":"chat","chanx_pos":{"${key}":[5,"x"]}}`, `{"action":"authentication","payload":{"status_code":200},"chanx_recovery":{"token":"t","positions":{"${key}":[1,"e"]},"${key}":null}}`, `{"action":"${key}","payload":{"${key}":{"${key}":1}}}`, '{"action":"authentication","payload":{"status_code":403,"status_text":{"toString":1},"data":{"detail":{"valueOf":1}}}}']) })
    } else {
      const bytes = Buffer.alloc(int(64))
      for (let j = 0; j < bytes.length; j++) bytes[j] = int(256)
      frames.push({ kind: 'binary', data: bytes })
    }
  }
  return frames
}

test(`${FRAMES} seeded hostile server frames: no exception escapes the client, which still works afterwards`, { timeout: 120_000 }, async (t) => {
  const frames = hostileFrames(SEED, FRAMES)
  const thrown: unknown[] = []
  // The real `ws` socket, with every handler the client sets wrapped: a throw out of one is counted here
  // (it would otherwise be an uncaught exception that ends the process).
  const Counting = function (url: string, protocols?: string | string[]) {
    const socket = new WebSocket(url, protocols)
    return new Proxy(socket, {
      set (target, key, handler) {
        (target as unknown as Record<string | symbol, unknown>)[key] = typeof handler !== 'function'
          ? handler
          : (event: unknown) => { try { handler(event) } catch (err) { thrown.push(err) } }
        return true
      },
      get (target, key) {
        const value = (target as unknown as Record<string | symbol, unknown>)[key]
        return typeof value === 'function' ? value.bind(target) : value
      }
    }) as unknown as WebSocketLike
  } as unknown as WebSocketConstructor

  const server = await startScripted((socket, _url, index) => {
    socket.send(authenticated({ chanx_recovery: { token: 'lineage', positions: { room: [0, 'e'] }, user_position: [0, 'u'] } }))
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { action: string, payload: unknown, id?: number }
      if (frame.action === 'restart') socket.close(1012, 'Service Restart')
      else if (frame.id !== undefined) socket.send(JSON.stringify({ action: 'echo', payload: frame.payload, id: frame.id }))
    })
    if (index > 0) return
    for (const frame of frames) socket.send(frame.data, { binary: typeof frame.data !== 'string' })
    socket.send(JSON.stringify({ action: 'fuzz-done', payload: null }))
  })
  t.teardown(() => server.close())

  const client = createClient(server.url, { WebSocket: Counting, backoff: { initialDelay: 10, maxDelay: 10 }, getToken: () => 'token' })
  t.teardown(() => client.close())
  let messages = 0
  client.on('message', () => { messages++ })
  const done = new Promise((resolve) => client.on('message:fuzz-done' as never, resolve))
  const started = Date.now()
  await client.connect()
  await done
  const elapsed = Date.now() - started

  t.equal(thrown.length, 0, `no exception escaped a handler${thrown.length > 0 ? ': ' + String(thrown[0]) : ''}`)
  t.equal(client.state, 'open', 'the client is still open')
  t.same(await client.request('echo' as never, { text: 'still here' } as never), { action: 'echo', payload: { text: 'still here' }, id: 1 },
    'a request after the fuzz gets its reply')
  const reopened = new Promise<{ reconnected: boolean }>((resolve) => client.on('open', resolve))
  client.send('restart' as never, null as never)
  t.match(await reopened, { reconnected: true }, 'it reconnects after a restart')
  const resume = resumeOf(server.handshakes[1]!) as { t: unknown, g: Record<string, unknown>, u?: unknown }
  t.type(resume.t, 'string', 'and resumes with a well-formed state')
  t.ok(Object.values(resume.g).every((position) => Array.isArray(position) && Number.isSafeInteger(position[0]) && typeof position[1] === 'string'),
    'every resumed position is [offset, epoch]')
  t.equal(thrown.length, 0, 'still no exception')

  const kinds: Record<string, number> = {}
  let bytes = 0
  for (const frame of frames) { kinds[frame.kind] = (kinds[frame.kind] ?? 0) + 1; bytes += frame.data.length }
  t.comment(`seed ${SEED.toString(16)}: ${frames.length} frames, ${(bytes / 1e6).toFixed(1)} MB, ${JSON.stringify(kinds)}; ` +
    `${messages} emitted as message, ${thrown.length} exceptions, ${elapsed} ms`)
})
