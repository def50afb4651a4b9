/** What the harness and the server variants share: the JWT secret and cookie name, and the baselines' setup. */
import { createRequire } from 'node:module'

export const SECRET = 'benchmark-secret-of-at-least-32-characters!'
export const COOKIE = 'token'

/**
 * Socket.IO 4 server options: the websocket transport only, no compression, and a ping interval far longer
 * than any run (the plugin servers run with `heartbeatInterval: 0`; Socket.IO cannot turn pings off).
 */
export const SOCKET_IO_OPTIONS = {
  transports: ['websocket' as const],
  serveClient: false,
  perMessageDeflate: false as const,
  httpCompression: false as const,
  pingInterval: 600_000,
  pingTimeout: 60_000
}
/** The engine.io URL path of a websocket-only Socket.IO client (protocol 4). */
export const SOCKET_IO_PATH = '/socket.io/?EIO=4&transport=websocket'
/** The Socket.IO CONNECT packet the clients send after engine.io's OPEN: the room rides in `auth`. */
export const SOCKET_IO_CONNECT = '40{"room":"lobby"}'

export type Uws = typeof import('@trufflesuite/uws-js-unofficial')

/**
 * uWebSockets.js from the npm repackage `@trufflesuite/uws-js-unofficial` (a dev dependency whose registry
 * tarball carries the prebuilt binaries). Its entry point silently falls back to a `ws`-based JavaScript
 * implementation when the binary does not load, so the binary for this platform and Node ABI is loaded
 * directly: either the native module or the reason it is not there.
 */
export function loadUws (): { uws: Uws, skip?: undefined } | { uws?: undefined, skip: string } {
  const name = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`
  try {
    const uws = createRequire(__filename)(`@trufflesuite/uws-js-unofficial/binaries/${name}`) as Uws
    if (typeof uws.App !== 'function') return { skip: `${name} loaded but has no App()` }
    return { uws }
  } catch (err) {
    return { skip: `uWebSockets.js (@trufflesuite/uws-js-unofficial) does not load here: ${(err as Error).message.split('\n')[0]}` }
  }
}

/**
 * Calls `broadcast` with `{ action: 'tick', payload: { t, s } }` at `rate` per second, `t` the scheduled
 * time (ms since the epoch) and `s` the sequence number, catching up after a late timer.
 */
export function broadcastAtRate (rate: number, broadcast: (message: { action: 'tick', payload: { t: number, s: number } }) => void): void {
  const interval = 1000 / rate
  const origin = performance.now()
  let sent = 0
  const tick = (): void => {
    const due = Math.floor((performance.now() - origin) / interval) + 1
    for (; sent < due; sent++) broadcast({ action: 'tick', payload: { t: performance.timeOrigin + origin + sent * interval, s: sent } })
    setTimeout(tick, Math.max(0, origin + sent * interval - performance.now()))
  }
  tick()
}

/**
 * A section one tool owns in bench/RESULTS.md, between `<!-- name:start -->` and `<!-- name:end -->`
 * (bench/capacity.ts and bench/history.ts write theirs; bench/run.ts carries them over when it rewrites the file).
 */
export function sectionMarks (name: string): { start: string, end: string } {
  return { start: `<!-- ${name}:start -->`, end: `<!-- ${name}:end -->` }
}

/** The section `name` of `text`, its marks included, or null when it has none. */
export function findSection (text: string, name: string): string | null {
  const { start, end } = sectionMarks(name)
  const from = text.indexOf(start)
  const to = from >= 0 ? text.indexOf(end, from) : -1
  return to >= 0 ? text.slice(from, to + end.length) : null
}

/** `text` with its section `name` replaced by `section` (marks included), or with `section` appended. */
export function withSection (text: string, name: string, section: string): string {
  const old = findSection(text, name)
  if (old === null) return text.replace(/\n*$/, '\n\n') + section + '\n'
  const from = text.indexOf(old)
  return text.slice(0, from) + section + text.slice(from + old.length)
}
