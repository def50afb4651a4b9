import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocket, type WebSocketServer } from 'ws'
import { DependencyChangedError } from './errors'
import { fastifyWebsocketVersion, installedVersion, websocketWsVersion } from './versions'

/**
 * Every place fastify-chanx reaches past the public surface of @fastify/websocket (v11) and ws (v8), in one
 * module. (ioredis's are in channels/redis/ioredis-internals.ts, under the same policy.)
 *
 * THE POLICY. A reach-in into another library's private parts stays only if it buys at least 5% on a bench
 * target (docs/benchmarks.md) or enables a documented behaviour that has no public way. Then:
 * - it lives in a file named `*-internals.ts` (test/layout.test.ts enforces it);
 * - a behavioural canary proves, on the installed version, that the library still behaves as assumed, and
 *   fails loudly with FST_CHANX_DEPENDENCY_CHANGED naming the dependency and its version: at registration
 *   (core/ws-canary-internals.ts), or, where only a live upgrade shows it, at the first upgrade;
 * - the fresh-install check (scripts/fresh-install, run by .ci/run) exercises it on the newest version our
 *   ranges allow, and a range is narrowed to the minors that check and the lockfile test (README, Compatibility).
 * A reach-in that does not qualify is deleted. Each one, and why it qualifies:
 *
 * - Options read per upgrade (`setMaxPayload`, `replaceHandleProtocols`): ws reads `maxPayload`,
 *   `maxFragments` and `handleProtocols` from `wss.options` on every upgrade, and @fastify/websocket builds
 *   the server before fastify-chanx is registered, so they are changed there, after construction. Enables
 *   documented behaviour with no public way: frames capped at 64 KiB unless configured, and `bearer.<jwt>`
 *   subprotocols never echoed. Canary: a real in-memory upgrade on a server of the app's own ws class,
 *   options changed after construction, must select the protocol the hook chose and refuse a frame over the
 *   cap (1009) and one fragment too many (1008). A ws that copied its options at construction fails
 *   registration instead of silently capping at 100 MiB and echoing credentials.
 * - Frames written straight to the socket's stream (`writeText` for replies under 4 KiB, `writeFramed` for
 *   a broadcast framed once), and a reply corked with its `complete` (`corkSocket`): measured at about 7% of
 *   server CPU per validated round trip (replies) and at the broadcast targets (one frame for every member,
 *   socket.io's precedent: its adapter pre-frames with `Sender.frame`, and engine.io writes with
 *   `_sender.sendFrame`, citing ws#617). Only right where ws would write the frame at once and unchanged:
 *   no permessage-deflate, nothing queued in ws's sender (`_state`, `_queue`), not inside a fragmented
 *   message (`_firstFragment`); `idleStream` checks exactly that, per send, and the caller sends through ws
 *   otherwise. Canary: on an in-memory socket, direct writes interleaved with ws's own sends (plain, a
 *   fragmented message, a Blob ws reads asynchronously, under a cork) must reach the stream in call order,
 *   and the direct path must decline exactly where ws would queue. A ws that buffers elsewhere fails
 *   registration instead of writing frames out of order.
 * - @fastify/websocket's stored upgrade stream and head (private symbols `ws-socket`, `ws-head`, found by
 *   description on the request at hand, so a second copy of the package in the process works too). Enables
 *   documented behaviour with no public way: a refused handshake still upgrades, to carry the authentication
 *   message and a close code (DESIGN), without reaching the route's handler; and the upgrade request does
 *   not keep the bytes it was read into, tokens included, for the socket's life (`releaseHead`). Canary:
 *   only a live upgrade request carries them, so the first upgrade of each app checks them
 *   (`gateUpgrades`) and logs FST_CHANX_DEPENDENCY_CHANGED once when they are gone; a refusal then
 *   throws it, logged with the request, and closes the raw socket where there is one.
 * - Removed: ws's per-socket client-tracking `'close'` listener was replaced by a shared function (0.8% of
 *   idle memory: below the bar); ws's own listener stays on every socket.
 *
 * Public surface, not reach-ins: `Sender.frame` (exported by ws; registration checks `frameString` builds
 * its bytes), and the gate put in front of `wss.handleUpgrade` (a public method, wrapped).
 */
/**
 * @fastify/websocket's two symbols as last found. A request that does not carry them (one from a second copy
 * of the package in the process) has them looked up again, by description, on itself.
 */
let socketSymbol: symbol | undefined
let headSymbol: symbol | undefined

function findSymbols (raw: IncomingMessage): boolean {
  let socket: symbol | undefined
  let head: symbol | undefined
  for (const symbol of Object.getOwnPropertySymbols(raw)) {
    if (symbol.description === 'ws-socket') socket = symbol
    else if (symbol.description === 'ws-head') head = symbol
  }
  if (socket === undefined || head === undefined) return false
  socketSymbol = socket
  headSymbol = head
  return true
}

/** Whether this upgrade request carries @fastify/websocket's stored stream and head (found as above). */
export function carriesUpgradeSymbols (raw: IncomingMessage): boolean {
  const carrier = raw as unknown as Record<symbol, unknown>
  if (socketSymbol !== undefined && carrier[socketSymbol] !== undefined) return true
  return findSymbols(raw) && carrier[socketSymbol!] !== undefined && Buffer.isBuffer(carrier[headSymbol!])
}

/** FST_CHANX_DEPENDENCY_CHANGED for @fastify/websocket's upgrade symbols. */
export function upgradeSymbolsChanged (): Error {
  return new DependencyChangedError('@fastify/websocket', fastifyWebsocketVersion(),
    'the upgrade request no longer carries the stream and head it stores under the symbols ws-socket and ws-head, ' +
    'which a refused handshake upgrades with and the head release clears')
}

const EMPTY_HEAD = Buffer.alloc(0)

/** The options object ws reads on each upgrade; only the fields fastify-chanx changes. */
interface ServerOptions {
  maxPayload?: number
  handleProtocols?: ((protocols: Set<string>, request: IncomingMessage) => string | false) | null
}

/**
 * The structural part of the registration canary (the behavioural part is core/ws-canary-internals.ts): a
 * `handleUpgrade` method, a writable `options` object, and ws's exported `Sender.frame` building the bytes
 * `frameString` builds.
 */
export function checkWebsocketServer (wss: WebSocketServer): void {
  const options = (wss as { options?: unknown }).options
  const descriptor = Object.getOwnPropertyDescriptor(wss, 'options')
  if (typeof wss.handleUpgrade !== 'function' || options === null || typeof options !== 'object' ||
    descriptor === undefined || Object.isFrozen(options) || !Object.isExtensible(options)) {
    throw new DependencyChangedError('ws', websocketWsVersion(), 'app.websocketServer does not have the shape of a ws 8 ' +
      'WebSocketServer (a handleUpgrade method and a writable options object); is a supported @fastify/websocket (11.x) installed?')
  }
  if (!checkFraming()) {
    throw new DependencyChangedError('ws', installedVersion('ws'), 'it does not export Sender.frame building the unmasked ' +
      'text frame ws 8 builds')
  }
}

interface SenderShape {
  _state?: unknown
  _queue?: { length: number }
  _firstFragment?: unknown
}

interface SocketShape {
  _extensions?: Record<string, unknown>
  _sender?: SenderShape | null
  _socket?: Duplex | null
}

type FrameFunction = (data: Buffer, options: { fin: boolean, opcode: number, mask: boolean, readOnly: boolean, rsv1: boolean }) => Buffer[]

const frameFunction = (WebSocket as unknown as { Sender?: { frame?: FrameFunction } }).Sender?.frame

/** ws's Sender state in which a send goes straight to the stream (DEFAULT in lib/sender.js). */
const SENDER_IDLE = 0
const DEFLATE = 'permessage-deflate'

/**
 * One unmasked, final text frame carrying `payload`, as one buffer: the header ws's `Sender.frame` builds,
 * then the payload. Exactly the bytes `socket.send(text)` writes for an uncompressed server socket.
 */
export function frameText (payload: Buffer): Buffer {
  const parts = frameFunction!(payload, { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false })
  return parts.length === 1 ? parts[0] : Buffer.concat(parts, parts[0].length + payload.length)
}

/**
 * The stream ws would write a frame to at once and unchanged, or null where it would not: compression
 * negotiated, a send queued behind a compression or a Blob, a fragmented message under way, or a ws whose
 * fields differ. The caller has checked that the socket is OPEN.
 */
function idleStream (socket: WebSocket): Duplex | null {
  const shape = socket as unknown as SocketShape
  const sender = shape._sender
  const stream = shape._socket
  const extensions = shape._extensions
  if (sender == null || stream == null || extensions === undefined || extensions[DEFLATE] !== undefined ||
    sender._state !== SENDER_IDLE || sender._queue === undefined || sender._queue.length !== 0 ||
    sender._firstFragment !== true) return null
  return stream
}

/**
 * Writes a whole frame (`frameString`) straight to the socket's stream, where ws would write it unchanged
 * and at once (see `idleStream`); `false`, nothing written, where it would not.
 */
export function writeFramed (socket: WebSocket, frame: Buffer): boolean {
  const stream = idleStream(socket)
  if (stream === null) return false
  stream.write(frame)
  return true
}

/**
 * Frames below this size come from Node's shared buffer pool (`Buffer.allocUnsafe`); a larger one would be
 * a new ArrayBuffer each, which the bench measured costing more than ws's own way (4 KB round trips:
 * 1.11x the hand-written pipeline, against 0.95x through ws).
 */
const POOLED_FRAME_BYTES = Buffer.poolSize >>> 1

/**
 * Sends `text` as one text frame in one buffer, header and UTF-8 payload together, where ws would write it
 * at once (see `idleStream`) and the frame fits a pooled buffer; `false`, nothing written, otherwise. ws's
 * own `send` corks the stream and writes the header and the string apart, which Node then joins in a
 * `writev`: for a short reply that costs more than the frame itself.
 */
export function writeText (socket: WebSocket, text: string): boolean {
  const length = Buffer.byteLength(text)
  if (length + 4 >= POOLED_FRAME_BYTES) return false
  const stream = idleStream(socket)
  if (stream === null) return false
  stream.write(frameString(text, length))
  return true
}

/** The unmasked final text frame carrying `text` (`length`: its UTF-8 bytes): the bytes `frameText(Buffer.from(text))` makes, in one allocation. */
export function frameString (text: string, length = Buffer.byteLength(text)): Buffer {
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(header + length)
  frame[0] = 0x81
  if (header === 2) {
    frame[1] = length
  } else if (header === 4) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(length / 0x100000000), 2)
    frame.writeUInt32BE(length >>> 0, 6)
  }
  frame.write(text, header, length, 'utf8')
  return frame
}

/**
 * Holds the socket's writes until `uncorkSocket`, so that frames sent in between (a reply and its
 * `complete`) leave in one system call; ws corks each frame the same way. Nothing when ws has no stream.
 */
export function corkSocket (socket: WebSocket): void {
  (socket as unknown as SocketShape)._socket?.cork()
}

export function uncorkSocket (socket: WebSocket): void {
  (socket as unknown as SocketShape)._socket?.uncork()
}

function checkFraming (): boolean {
  if (typeof frameFunction !== 'function') return false
  try {
    const frame = frameText(Buffer.from('{}'))
    return frame.length === 4 && frame[0] === 0x81 && frame[1] === 2 && frame[2] === 123 && frame[3] === 125 &&
      frame.equals(frameString('{}'))
  } catch {
    return false
  }
}

function serverOptions (wss: WebSocketServer): ServerOptions {
  return wss.options as ServerOptions
}

export function maxPayloadOf (wss: WebSocketServer): number | undefined {
  return serverOptions(wss).maxPayload
}

/**
 * Each fragment of a message costs ws a Buffer and its bookkeeping (about 100 bytes) however small it is:
 * 16,000 one-byte continuation frames (ws's default `maxFragments` is 16,384) made a server hold 1.7 MiB for
 * a 64 KiB cap. So a fragment counts as at least this many bytes against the frame cap.
 */
export const MIN_FRAGMENT_BYTES = 512

/** The fragment limit that goes with a frame cap: `maxPayload / MIN_FRAGMENT_BYTES`, at least 16. */
export function maxFragmentsFor (maxPayload: number): number {
  return Math.max(16, Math.ceil(maxPayload / MIN_FRAGMENT_BYTES))
}

/**
 * ws enforces the frame cap itself, with 1009, before it buffers a larger frame; and the fragment limit, with
 * 1008 `Too many message fragments`, before it buffers one fragment too many.
 */
export function setMaxPayload (wss: WebSocketServer, maxPayload: number): void {
  const options = serverOptions(wss) as ServerOptions & { maxFragments?: number }
  options.maxPayload = maxPayload
  options.maxFragments = maxFragmentsFor(maxPayload)
}

/** Replaces ws's subprotocol selection; returns the one configured before (the app's own, or none). */
export function replaceHandleProtocols (wss: WebSocketServer, select: NonNullable<ServerOptions['handleProtocols']>): ServerOptions['handleProtocols'] {
  const options = serverOptions(wss)
  const previous = options.handleProtocols
  options.handleProtocols = select
  return previous
}

/**
 * Puts a gate in front of this server's `handleUpgrade`, which @fastify/websocket calls from the route's
 * handler (and the refusal path calls too): an upgrade the gate refuses never becomes a socket; the gate
 * answers it on the raw stream itself. (ws's `verifyClient` would do the same but reads `req.socket`, which
 * `injectWS` requests do not have.)
 */
export function gateUpgrades (
  wss: WebSocketServer,
  admits: (req: IncomingMessage, stream: Duplex) => boolean,
  changed: (err: Error) => void
): void {
  const handleUpgrade = wss.handleUpgrade
  let checked = false
  wss.handleUpgrade = function gatedUpgrade (this: WebSocketServer, req, stream, head, callback) {
    // The canary of @fastify/websocket's symbols: only a live upgrade request carries them, so the first one checks.
    if (!checked) {
      checked = true
      if (!carriesUpgradeSymbols(req)) changed(upgradeSymbolsChanged())
    }
    if (admits(req, stream)) handleUpgrade.call(this, req, stream, head, callback)
    releaseHead(req)
  }
}

/**
 * Drops @fastify/websocket's reference to the upgrade's head once ws has been handed it (ws puts any bytes
 * back on the stream; an argument, not the request, carries them on). The head is a view of the buffer the
 * whole upgrade request was read into, and the request stays alive as long as its socket: without this,
 * every open socket would keep its request's bytes, cookies and tokens included.
 */
function releaseHead (req: IncomingMessage): void {
  if (!carriesUpgradeSymbols(req)) return
  const carrier = req as unknown as Record<symbol, unknown>
  if (carrier[headSymbol!] !== undefined) carrier[headSymbol!] = EMPTY_HEAD
}

/**
 * The stream the upgrade will run on: @fastify/websocket's stored socket (a real TCP socket, or the
 * in-memory stream of `injectWS`), else `raw.socket`. `undefined` when there is none.
 */
export function upgradeStream (raw: IncomingMessage): Duplex | undefined {
  const stream = carriesUpgradeSymbols(raw) ? (raw as unknown as Record<symbol, Duplex | undefined>)[socketSymbol!] : undefined
  return stream ?? raw.socket ?? undefined
}

/** Upgrades a refused handshake's request itself (see the header); FST_CHANX_DEPENDENCY_CHANGED when it cannot. */
export function upgradeSocket (wss: WebSocketServer, raw: IncomingMessage, onSocket: (socket: WebSocket) => void): void {
  if (!carriesUpgradeSymbols(raw)) throw upgradeSymbolsChanged()
  const carrier = raw as unknown as Record<symbol, unknown>
  const stream = carrier[socketSymbol!] as Duplex
  const head = carrier[headSymbol!] as Buffer | undefined ?? EMPTY_HEAD
  wss.handleUpgrade(raw, stream, head, onSocket)
}
